"""``kiln gc``'s second half: what no image references any more (:mod:`kiln.lifecycle.references`).

* artifacts of retired images still on disk (a retire that was interrupted part-way), and their
  objects in the shared store (``KILN_STORE_URL``) that no live image needs;
* blobs of the store (``blobs/sha256``) that are no image's evidence and no live image's OCI blob,
  except those written in the last hour or since the oldest running build started (a build, or a
  ``kiln comply`` / ``kiln scan`` of a recorded image, may be about to record them);
* layer cache entries whose layer no live image's manifest names, when the cache belongs to this data
  directory only: a shared ``KILN_CACHE_DIR`` serves other data directories whose catalogs this one
  cannot see, so its entries are kept. An entry a build is making or using is never removed (its
  create lock and lease, :mod:`kiln.cachelock`).
* folders of the read-through cache ``remote/`` of retired images, or of images the catalog does not
  know (:mod:`kiln.lifecycle.sharedgc`);
* unpacked parent trees (``cache/image-parents``) and registry copies of parents (``cache/registry``)
  that no active or deprecated image is, or builds on (a private cache only, as for layers; an entry a
  build uses is kept: its lease, or for a registry copy its fetch lock and an hour's grace).

Bytes freed count only files whose last link went: a cached layer hard-linked into an image's
layout frees nothing until both are gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from kiln.build import layercache
from kiln.cachelock import try_exclusive
from kiln.catalog import Catalog
from kiln.catalog.models import BuildRow
from kiln.lifecycle.references import References, live_references
from kiln.lifecycle.retire import delete_artifacts, freed_bytes
from kiln.lifecycle.sharedgc import delete_shared, location, remove_tree, shared_holders, stale_remote
from kiln.readthrough import shared_store
from kiln.rootfs import imageparent
from kiln.store import Store

GRACE_SECONDS = 3600
Found = Callable[[Path, str, int, str], None]  # (path, kind, bytes freed, reason)
Kept = Callable[[Path, str, int, str], None]


def _oldest_running_build(catalog: Catalog) -> datetime | None:
    with catalog.session() as s:
        return s.scalar(select(func.min(BuildRow.started)).where(BuildRow.status == "running"))


def retired_leftovers(store: Store, catalog: Catalog, refs: References, found: Found, dry_run: bool) -> None:
    shared = shared_store(store)
    held = shared_holders(store, shared, catalog) if shared is not None else None
    for image in catalog.list_images():
        if image.state != "retired":
            continue
        for item in delete_artifacts(store, image, refs, dry_run=dry_run).removed:
            found(item.path, "retired-artifact", item.freed, f"{image.ref} is retired")
        if shared is not None:  # a retire interrupted before the shared store's objects went
            for name in delete_shared(store, catalog, image, dry_run=dry_run, refs=held).removed:
                found(location(shared, name), "shared-object", 0, f"{image.ref} is retired")


def store_blobs(
    store: Store, catalog: Catalog, refs: References, found: Found, kept: Kept, dry_run: bool
) -> None:
    cutoff = time.time() - GRACE_SECONDS
    running = _oldest_running_build(catalog)
    if running is not None:
        cutoff = min(cutoff, running.timestamp())
    for blob in sorted((store.home / "blobs" / "sha256").glob("*")):
        digest = "sha256:" + blob.name
        if not blob.is_file() or digest in refs.evidence or refs.blobs.get(digest):
            continue
        size = freed_bytes(blob)
        if blob.stat().st_mtime >= cutoff:
            kept(blob, "blob", size, "written recently or while a build runs: it may be about to be recorded")
            continue
        if not dry_run:
            blob.unlink(missing_ok=True)
        found(blob, "blob", size, "no image references it")


def layer_cache(store: Store, refs: References, found: Found, kept: Kept, dry_run: bool) -> None:
    root = store.cache / "layers"
    private = store.cache.absolute() == (store.home / "cache").absolute()
    entries = layercache.entries(store)
    unused = []
    for entry in sorted(p for p in root.glob("*") if p.is_dir()):
        meta = entries.get(entry.name)
        if meta is not None and not refs.blobs.get(str(meta.get("digest"))):
            unused.append(entry)  # incomplete entries are the next build's to replace
    if not private:
        if unused:
            total = sum(freed_bytes(entry) for entry in unused)
            why = (
                f"{len(unused)} entries no image here uses; a shared KILN_CACHE_DIR may serve other data dirs"
            )
            kept(root, "layer-cache", total, why)
        return
    for entry in unused:
        size = freed_bytes(entry)
        if dry_run or layercache.remove(store, entry.name):
            found(entry, "layer-cache", size, "no live image uses this layer")
        else:
            kept(entry, "layer-cache", size, "a build is making or using it")


def _parents_in_use(catalog: Catalog) -> set[str]:
    """Digests of images a new build may take as its parent, and of the parents usable images were
    built on (their trees serve a rebuild)."""
    wanted: set[str] = set()
    for image in catalog.list_images():
        if image.state in ("active", "deprecated"):
            wanted.add(image.digest)
            if image.parent_digest:
                wanted.add(image.parent_digest)
    return wanted


def parent_caches(store: Store, catalog: Catalog, found: Found, kept: Kept, dry_run: bool) -> None:
    trees = sorted(p for p in (store.cache / "image-parents").glob("*") if p.is_dir())
    copies = sorted(p for p in (store.cache / "registry").glob("*") if p.is_dir())
    wanted = _parents_in_use(catalog)
    unused = [p for p in trees + copies if "sha256:" + p.name not in wanted]
    if store.cache.absolute() != (store.home / "cache").absolute():
        if unused:
            why = f"{len(unused)} parent entries no image here uses; a shared KILN_CACHE_DIR may serve others"
            kept(store.cache, "parent-cache", sum(freed_bytes(p) for p in unused), why)
        return
    entries = imageparent.entries(store)
    cutoff = time.time() - GRACE_SECONDS
    for entry in unused:
        size = freed_bytes(entry)
        if entry.parent.name == "image-parents":
            removed = dry_run or entries.remove(entry.name)
        elif entry.stat().st_mtime >= cutoff:
            removed = False
        elif dry_run:
            removed = True
        else:
            held = try_exclusive(entry.parent / f"{entry.name}.lock")
            removed = held is not None
            if held is not None:
                try:
                    remove_tree(entry)
                finally:
                    for lock in held:
                        lock.release()
        if removed:
            found(entry, "parent-cache", size, "no active or deprecated image is or builds on this parent")
        else:
            kept(entry, "parent-cache", size, "a build is fetching or using it")


def collect_unreferenced(store: Store, catalog: Catalog, found: Found, kept: Kept, *, dry_run: bool) -> None:
    """Report (and unless ``dry_run`` remove) everything no image references; see the module doc."""
    refs = live_references(store, catalog)
    retired_leftovers(store, catalog, refs, found, dry_run)
    store_blobs(store, catalog, refs, found, kept, dry_run)
    layer_cache(store, refs, found, kept, dry_run)
    parent_caches(store, catalog, found, kept, dry_run)
    for folder, why in stale_remote(store, catalog):
        found(folder, "remote-cache", freed_bytes(folder), why)
        if not dry_run:
            remove_tree(folder)
