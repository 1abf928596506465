"""Retire an image: record the state, then delete its artifacts that no other image references.

The state is recorded first, so nothing starts using the image while its files go; an interrupted
deletion is finished by ``kiln gc`` (:func:`delete_artifacts` again). Only the image's own artifact
paths are removed (its OCI layout, disks, archives); its lock file, the component documents, the
evidence blobs (SBOMs, provenance, scans, compliance results) and the catalog record stay. A blob of
the shared store (``blobs/sha256``) goes only when no other non-retired image's manifest names it and
it is no image's evidence (:mod:`kiln.lifecycle.references`); so does an object of the shared store
(``KILN_STORE_URL``, :mod:`kiln.lifecycle.sharedgc`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog, ImageRecord
from kiln.lifecycle.references import References, image_blob_digests, live_references
from kiln.lifecycle.sharedgc import SharedReport, delete_shared
from kiln.lifecycle.states import State, StateChange, add_details, change_state
from kiln.lifecycle.unpublish import Unpublisher
from kiln.store import Store

METADATA_KINDS = frozenset({"lock"})
"""Artifacts that describe the image rather than being it (the lock file of resolved inputs): kept."""


@dataclass(frozen=True)
class Removed:
    path: Path
    freed: int  # bytes whose last link went (a hard link another image or the cache holds frees nothing)


@dataclass
class RetireReport:
    image: str
    change: StateChange | None = None
    removed: list[Removed] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it stays)
    unpublished: list[dict[str, Any]] = field(default_factory=list)  # per distribution target
    shared: SharedReport = field(default_factory=SharedReport)  # the shared store's objects

    @property
    def freed(self) -> int:
        return sum(r.freed for r in self.removed)

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "freed": self.freed,
            "removed": [{"path": str(r.path), "freed": r.freed} for r in self.removed],
            "kept": [{"path": str(p), "reason": why} for p, why in self.kept],
            "unpublished": self.unpublished,
            "shared": {"removed": self.shared.removed,
                       "kept": [{"object": o, "reason": why} for o, why in self.shared.kept]},
        }  # fmt: skip


def freed_bytes(path: Path) -> int:
    """Bytes that removing ``path`` gives back: files whose only link is this one (blocks, not sizes)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_blocks * 512 if st.st_nlink == 1 else 0
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                f = (Path(folder) / name).lstat()
            except OSError:
                continue
            total += f.st_blocks * 512 if f.st_nlink == 1 else 0
    return total


def _inside(path: Path, root: Path) -> bool:
    """Is ``path`` (its parent resolved, the last component itself not followed) below ``root``?"""
    try:
        where = path.parent.resolve() / path.name
    except OSError:
        return False
    return where.is_relative_to(root.resolve()) and where != root.resolve() and ".." not in path.parts


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def delete_artifacts(
    store: Store, image: ImageRecord, refs: References, *, dry_run: bool = False
) -> RetireReport:
    """Remove ``image``'s artifact paths and its store blobs that nothing in ``refs`` needs."""
    report = RetireReport(image.ref)
    own_blobs = image_blob_digests(store, image)  # read before the layouts go
    for artifact in image.artifacts:
        path = store.artifact_path(artifact.path).absolute()
        if not path.exists() and not path.is_symlink():
            continue
        if not _inside(path, store.home / "images"):
            report.kept.append(
                (path, f"outside {store.home / 'images'}: Kiln deletes only what it wrote there")
            )
            continue
        if artifact.kind in METADATA_KINDS:
            report.kept.append((path, f"{artifact.kind} file: metadata, kept forever"))
            continue
        holder = refs.path_holder(path, besides=image.ref)
        if holder is not None:
            report.kept.append((path, f"also an artifact of {holder}"))
            continue
        report.removed.append(Removed(path, freed_bytes(path)))
        if not dry_run:
            _remove(path)
    for digest in sorted(own_blobs):
        blob = store.blob_path(digest)
        if not blob.is_file():
            continue
        if digest in refs.evidence:
            report.kept.append((blob, "evidence of an image (kept forever)"))
        elif (holder := refs.blob_holder(digest, besides=image.ref)) is not None:
            report.kept.append((blob, f"referenced by {holder}"))
        else:
            report.removed.append(Removed(blob, freed_bytes(blob)))
            if not dry_run:
                blob.unlink(missing_ok=True)
    return report


def retire(
    store: Store, catalog: Catalog, ref: str, *, actor: str, reason: str, now: datetime | None = None,
    expect: State | None = None, details: Mapping[str, object] | None = None,
    unpublish: Unpublisher | None = None, refs: References | None = None,
) -> RetireReport:  # fmt: skip
    """Retire ``ref``: record the state change (refused unless legal), delete what only it used, and
    add what was deleted to the change's record. ``unpublish`` first takes it off its distribution
    targets (what it reports is recorded per target). ``refs``: references computed once for many
    retires (a policy's apply); by default they are computed now."""
    image = catalog.get_image(ref)
    change = change_state(catalog, image.ref, "retired", actor=actor, reason=reason, now=now,
                          expect=expect, details=details)  # fmt: skip
    unpublished = unpublish(catalog, image) if unpublish is not None else []
    refs = refs if refs is not None else live_references(store, catalog)
    report = delete_artifacts(store, image, refs)
    refs.forget(image.ref)
    report.shared = delete_shared(store, catalog, catalog.get_image(image.ref))
    report.change = change
    report.unpublished = unpublished
    add_details(
        catalog, change.id,
        {"freed": report.freed, "removed": [str(r.path) for r in report.removed], "unpublished": unpublished,
         "shared_removed": report.shared.removed},
    )  # fmt: skip
    return report
