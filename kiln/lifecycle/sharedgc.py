"""The shared store (``KILN_STORE_URL``) and this machine's read-through cache, when images retire.

Retiring an image deletes its objects from the shared store under the rules of the local blob store
(:mod:`kiln.lifecycle.references`): an object goes when no other non-retired image's artifacts name
it and it is no image's evidence (kept forever). What an image's objects are is computed afresh from
the catalog and its manifests: read from the local OCI layout when there is one, else from the shared
store (only manifests and indexes are read, never a layer). An image whose manifest is in neither
place published nothing to the store and so holds nothing there.

``kiln gc`` also empties ``remote/`` (the copies :mod:`kiln.readthrough` fetched) of the folders of
retired images and of images this catalog does not know; ``remote/logs`` is left alone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog, ImageRecord
from kiln.errors import KilnError
from kiln.lifecycle.references import DIGEST, layout_digests
from kiln.objectstore import LocalObjectStore, ObjectStore, index_key
from kiln.readthrough import cache_path, shared_store
from kiln.store import Store


@dataclass
class SharedReport:
    removed: list[str] = field(default_factory=list)  # object digests (and index keys) deleted
    kept: list[tuple[str, str]] = field(default_factory=list)  # (digest, why it stays)


def _read_json(shared: ObjectStore, digest: str) -> dict[str, Any] | None:
    try:
        if not shared.has(digest):
            return None
        doc = json.loads(b"".join(shared.chunks(digest)))
    except (KilnError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _manifest_objects(shared: ObjectStore, manifest: str) -> set[str]:
    """The manifest (or index) ``manifest`` and everything below it, read from the shared store."""
    found: set[str] = set()
    todo = [manifest]
    while todo:
        digest = todo.pop()
        if not DIGEST.match(digest) or digest in found:
            continue
        doc = _read_json(shared, digest)
        if doc is None:
            continue
        found.add(digest)
        for desc in [doc.get("config"), *doc.get("layers", [])]:
            if isinstance(desc, dict) and DIGEST.match(str(desc.get("digest", ""))):
                found.add(str(desc["digest"]))
        todo += [str(d.get("digest", "")) for d in doc.get("manifests", []) if isinstance(d, dict)]
    return found


def shared_objects(store: Store, shared: ObjectStore, image: ImageRecord) -> set[str]:
    """The objects ``image``'s artifacts consist of (see the module docstring)."""
    digests = {a.digest for a in image.artifacts if DIGEST.match(a.digest)}
    for artifact in image.artifacts:
        if artifact.kind != "oci":
            continue
        local = store.artifact_path(artifact.path)
        if (local / "index.json").is_file():
            digests |= layout_digests(local)
        else:
            digests |= _manifest_objects(shared, artifact.digest)
    return digests


@dataclass
class SharedHolders:
    """Who needs what in the shared store: live images' objects, and every image's evidence."""

    objects: dict[str, str] = field(default_factory=dict)  # digest -> a live image naming it
    evidence: set[str] = field(default_factory=set)


def shared_holders(
    store: Store, shared: ObjectStore, catalog: Catalog, *, besides: str | None = None
) -> SharedHolders:
    """The references of every non-retired image other than ``besides`` (computed once for many)."""
    found = SharedHolders()
    for image in catalog.list_images():
        found.evidence |= {e.digest for e in image.evidence}
        if image.state == "retired" or image.ref == besides:
            continue
        for digest in shared_objects(store, shared, image):
            found.objects.setdefault(digest, image.ref)
    return found


def delete_shared(
    store: Store, catalog: Catalog, image: ImageRecord, *, dry_run: bool = False,
    refs: SharedHolders | None = None,
) -> SharedReport:  # fmt: skip
    """Delete ``image``'s objects from the shared store that no other live image needs (``refs``:
    :func:`shared_holders` computed once for many retired images)."""
    report = SharedReport()
    shared = shared_store(store)
    if shared is None:
        return report
    own = shared_objects(store, shared, image)
    refs = refs or shared_holders(store, shared, catalog, besides=image.ref)
    evidence, holders = refs.evidence, {d: h for d, h in refs.objects.items() if h != image.ref}
    for digest in sorted(own):
        if not shared.has(digest):
            continue
        if digest in evidence:
            report.kept.append((digest, "evidence of an image (kept forever)"))
        elif digest in holders:
            report.kept.append((digest, f"referenced by {holders[digest]}"))
        else:
            report.removed.append(digest)
            if not dry_run:
                shared.delete(digest)
    for artifact in image.artifacts:
        key = index_key(artifact.digest) if artifact.kind == "oci" and DIGEST.match(artifact.digest) else None
        if key is not None and artifact.digest not in holders and shared.get_named(key) is not None:
            report.removed.append(key)
            if not dry_run:
                shared.delete_named(key)
    return report


def location(shared: ObjectStore, name: str) -> Path:
    """Where an object (a digest or a named key) is, for reports: a path in a directory store."""
    if isinstance(shared, LocalObjectStore):
        return shared.path(name) if name.startswith("sha256:") else shared.root / name
    return Path(f"{shared.url}/{name}")


def stale_remote(store: Store, catalog: Catalog) -> list[tuple[Path, str]]:
    """Folders of ``remote/`` that no live image's artifacts are cached in, with why."""
    root = store.home / "remote"
    if not root.is_dir():
        return []
    live: set[Path] = set()
    retired: dict[Path, str] = {}
    for image in catalog.list_images():
        for artifact in image.artifacts:
            folder = cache_path(store, artifact.path).parent
            if image.state == "retired":
                retired.setdefault(folder, image.ref)
            else:
                live.add(folder)
    stale = []
    for folder in sorted(root.glob("*/*")):
        if folder.parent == root / "logs" or folder in live or not folder.is_dir() or folder.is_symlink():
            continue
        why = (
            f"{retired[folder]} is retired"
            if folder in retired
            else "no image in this catalog is cached here"
        )
        stale.append((folder, why))
    return stale


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
