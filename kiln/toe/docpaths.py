"""Where an ExecuteDocument path points on the host: only inside the running component's own folder.

A relative path is relative to the calling document's folder and must stay, with every symlink
resolved, inside the folder of the top-level document (the component): ``../../etc/shadow`` or a
symlink out of that folder is refused, never read. An absolute path names a file inside the image
(a document an earlier step downloaded) and is never looked up on the host. Messages name paths
only, never a document's content.
"""

from __future__ import annotations

from pathlib import Path

MAX_NESTING = 3  # documents a document may call in a chain below it (AWSTOE's limit)


class DocumentPathError(ValueError):
    """An ExecuteDocument path that cannot be used (outside the component's folder, missing)."""


def is_local_relative(document: str) -> bool:
    """A path relative to the calling document (not absolute in the image, not S3 or an ARN)."""
    return not document.startswith(("/", "s3://", "arn:"))


def resolve_document(document: str, base: Path, root: Path) -> Path:
    """The host file of the relative path ``document`` written in a document in folder ``base``."""
    if not is_local_relative(document):
        raise DocumentPathError(f"{document}: not a path relative to the calling document")
    try:
        real_root = root.resolve()
        candidate = (base / document).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise DocumentPathError(f"{document}: cannot resolve the path: {exc}") from None
    if candidate != real_root and real_root not in candidate.parents:
        raise DocumentPathError(
            f"{document}: outside the component's folder {real_root} (after resolving '..' and symlinks); "
            "ExecuteDocument only reads documents in that folder or below it"
        )
    if not candidate.exists():
        raise DocumentPathError(f"{document}: document not found in {base}")
    return candidate
