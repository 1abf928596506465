"""Pull a few files out of an image's layers without unpacking them all: enough of a root for a scanner.

Layers (:class:`kiln.layers.unpack.LayerSource`) are read in order as tar streams; only wanted paths
are kept, and OCI whiteouts (``.wh.NAME``) and opaque markers (``.wh..wh..opq``) of later layers
remove what earlier layers put there.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from kiln.layers.unpack import LayerSource, UnsafeLayer
from kiln.layers.walk import OPAQUE_MARKER, WHITEOUT_PREFIX

Entry = tuple[str, bytes]  # ("file", content) or ("symlink", target)


def _rel(name: str) -> str:
    parts = [p for p in PurePosixPath(name.lstrip("/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"layer entry escapes the root: {name!r}")
    return "/".join(parts)


def _drop(kept: dict[str, Entry], target: str, keep: set[str]) -> None:
    for path in [p for p in kept if (p == target or p.startswith(target + "/")) and p not in keep]:
        del kept[path]


def read_files(layers: Iterable[LayerSource], wanted: Callable[[str], bool]) -> dict[str, Entry]:
    """The final content of every wanted path across ``layers`` (bottom first)."""
    kept: dict[str, Entry] = {}
    for source in layers:
        written: set[str] = set()
        with source.open() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = _rel(member.name)
                parent, _, base = rel.rpartition("/")
                if base == OPAQUE_MARKER:
                    _drop(kept, parent, written)
                elif base.startswith(WHITEOUT_PREFIX):
                    _drop(kept, f"{parent}/{base[len(WHITEOUT_PREFIX) :]}".lstrip("/"), written)
                elif not member.isdir():
                    _drop(kept, rel, written)  # a file or link replaces whatever was there
                    if wanted(rel) and member.isfile():
                        fh = tar.extractfile(member)
                        kept[rel] = ("file", fh.read() if fh else b"")
                        written.add(rel)
                    elif wanted(rel) and member.issym():
                        kept[rel] = ("symlink", member.linkname.encode())
                        written.add(rel)
    return kept


def write_files(files: dict[str, Entry], dest: Path) -> None:
    for rel, (kind, data) in sorted(files.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "symlink":
            path.symlink_to(data.decode())
        else:
            path.write_bytes(data)
