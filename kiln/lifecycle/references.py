"""What the catalog's images still reference: artifact paths, OCI blobs, evidence blobs.

Computed afresh from the catalog and the OCI manifests on disk each time (never a stored counter that
could drift): a blob is referenced while a non-retired image's manifest names it; evidence blobs are
referenced by every image, retired ones included (SBOMs and provenance are kept forever).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog, ImageRecord
from kiln.store import Store

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
"""A blob digest as Kiln writes them; anything else in a manifest is never turned into a path."""


def layout_digests(layout: Path) -> set[str]:
    """Every blob an OCI layout's index references: manifests, configs, layers (nothing when unreadable)."""
    found: set[str] = set()
    todo: list[dict[str, Any]] = []
    try:
        index = json.loads((layout / "index.json").read_bytes())
        todo = [d for d in index.get("manifests", []) if isinstance(d, dict)]
    except (OSError, ValueError, AttributeError):
        return found
    while todo:
        desc = todo.pop()
        digest = str(desc.get("digest", ""))
        if not DIGEST.match(digest) or digest in found:
            continue
        found.add(digest)
        try:
            doc = json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        children = [doc.get("config"), *doc.get("layers", []), *doc.get("manifests", [])]
        todo += [c for c in children if isinstance(c, dict)]
    return found


def image_blob_digests(store: Store, image: ImageRecord) -> set[str]:
    """The blobs ``image``'s artifacts consist of (its OCI layouts' blobs and each artifact's digest)."""
    digests = {a.digest for a in image.artifacts if DIGEST.match(a.digest)}
    for artifact in image.artifacts:
        path = store.artifact_path(artifact.path)
        if path.is_dir():
            digests |= layout_digests(path)
    return digests


@dataclass
class References:
    """Who still needs what: every live (non-retired) image's artifact paths and OCI blobs, and every
    image's evidence. One computation serves many retires (:meth:`forget` each retired image)."""

    paths: dict[Path, set[str]] = field(default_factory=dict)  # artifact path -> images recording it
    blobs: dict[str, set[str]] = field(default_factory=dict)  # digest -> images whose manifests name it
    evidence: set[str] = field(default_factory=set)  # evidence digests of every image (kept forever)

    def path_holder(self, path: Path, *, besides: str) -> str | None:
        """A live image other than ``besides`` that records ``path``, if any."""
        return min(self.paths.get(path.absolute(), set()) - {besides}, default=None)

    def blob_holder(self, digest: str, *, besides: str) -> str | None:
        """A live image other than ``besides`` whose manifest names ``digest``, if any."""
        return min(self.blobs.get(digest, set()) - {besides}, default=None)

    def forget(self, ref: str) -> None:
        """``ref`` no longer holds anything (it was retired)."""
        for holders in (*self.paths.values(), *self.blobs.values()):
            holders.discard(ref)


def live_references(store: Store, catalog: Catalog) -> References:
    """References of every image that is not retired, computed from the catalog and the layouts."""
    refs = References()
    for image in catalog.list_images():
        refs.evidence |= {e.digest for e in image.evidence}
        if image.state == "retired":
            continue
        for artifact in image.artifacts:
            refs.paths.setdefault(store.artifact_path(artifact.path).absolute(), set()).add(image.ref)
        for digest in image_blob_digests(store, image):
            refs.blobs.setdefault(digest, set()).add(image.ref)
    return refs
