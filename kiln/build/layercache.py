"""The layer cache: ``cache/layers/<key>/`` holds a layer's tree (``upper/``, for components), its
``layer.tar.gz`` and ``layer.json``.

Concurrent builds share it (the rules are in kiln.cachelock): ``<key>.lock`` is held by the one build
making the entry, from before its build phase until ``layer.json`` (written last, after a sync, by one
rename) commits it; a second build of the same key waits and reuses the entry. ``<key>.lease`` is held
shared by every build using the entry, so nothing removes it under them. An entry is complete by
:mod:`kiln.cachestore`'s rule (``layer.json`` and the blob it describes); anything else is debris of an
interrupted build and is replaced by the next build of its key.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from kiln.cachelock import FileLock
from kiln.cachestore import KeyedCache, write_marker
from kiln.layers.tar import LayerBlob, write_layer
from kiln.sandbox.run import run
from kiln.store import Store

BLOB_NAME = "layer.tar.gz"
META_NAME = "layer.json"

Cached = tuple[LayerBlob, dict[str, Any]]
Progress = Callable[[int, int], None]  # (bytes written, total): see kiln.layers.tar.write_layer


def entries(store: Store) -> KeyedCache:
    """The layer cache as a keyed store: an entry is complete with its ``layer.json`` and blob."""
    return KeyedCache(store.cache / "layers", META_NAME, requires=lambda entry, _: [entry / BLOB_NAME])


def load(store: Store, key: str) -> Cached | None:
    """A complete cached layer, or None."""
    meta = entries(store).get(key)
    if meta is None:
        return None
    blob = LayerBlob(store.layer_dir(key) / BLOB_NAME, meta["digest"], meta["diff_id"], meta["size"])
    return blob, meta


@dataclass
class Claim:
    """A build's hold on the layer ``key``: a lease for as long as the build runs, and the entry's
    create lock while this build makes it.

    ``hit``: the complete entry to reuse. Else ``create`` is held and this build makes the entry — or,
    with ``reuse`` off while a complete entry exists (``--no-cache``), ``create`` is None and the
    build keeps its new layer to itself: an entry other builds may be using is never replaced.
    """

    key: str
    lease: FileLock
    create: FileLock | None
    hit: Cached | None

    def release(self) -> None:
        if self.create is not None:
            self.create.release()
        self.lease.release()


def claim(store: Store, key: str, *, reuse: bool = True, on_wait: Callable[[], None] | None = None) -> Claim:
    """Lease the entry ``key``; when it is not complete (or not to be reused), take its create lock,
    waiting for a build making it now (``on_wait`` says so), and clear any debris."""
    cache = entries(store)
    lease = cache.lease(key)
    lease.acquire(shared=True)
    try:
        hit = load(store, key)
        if reuse and hit is not None:
            return Claim(key, lease, None, hit)
        create = cache.create_lock(key)
        create.acquire(on_wait=on_wait)
        hit = load(store, key)
        if hit is not None:
            create.release()
            return Claim(key, lease, None, hit if reuse else None)
        cache.discard(key)
        return Claim(key, lease, create, None)
    except BaseException:
        lease.release()
        raise


def remove(store: Store, key: str) -> bool:
    """Remove the entry ``key`` unless a build makes or uses it (for gc); True when removed."""
    return entries(store).remove(key)


def done(value: LayerBlob) -> Future[LayerBlob]:
    future: Future[LayerBlob] = Future()
    future.set_result(value)
    return future


def adopt_tree(entry: Path, tree: Path) -> Path:
    """Move a finished upper directory into ``entry`` (made by its creator only); returns its new path."""
    entry.mkdir(parents=True, exist_ok=True)
    target = entry / "upper"
    try:
        os.replace(tree, target)
    except OSError as exc:  # the upper dir was in the memory scratch space: copy it to the disk
        if exc.errno != errno.EXDEV:
            raise
        run(["cp", "-a", str(tree), str(target)])  # keeps whiteouts, opaque xattrs, hard links
        shutil.rmtree(tree)
    return target


def write(entry: Path, tree: Path, kind: Literal["rootfs", "upper"], epoch: int, level: int,
          meta: dict[str, Any], on_progress: Progress | None = None) -> LayerBlob:  # fmt: skip
    """Write the blob, sync the entry (tree and blob), then commit it with ``layer.json``."""
    entry.mkdir(parents=True, exist_ok=True)
    tmp = entry / f"{BLOB_NAME}.partial"
    blob = write_layer(tree, tmp, epoch=epoch, kind=kind, compresslevel=level, on_progress=on_progress)
    final = entry / BLOB_NAME
    os.replace(tmp, final)
    record = {**meta, "digest": blob.digest, "diff_id": blob.diff_id, "size": blob.size}
    write_marker(entry / META_NAME, record, sync=entry)
    return LayerBlob(final, blob.digest, blob.diff_id, blob.size)


def schedule(executor: ThreadPoolExecutor, entry: Path, tree: Path, kind: Literal["rootfs", "upper"],
             epoch: int, level: int, meta: dict[str, Any], create: FileLock | None,
             on_progress: Progress | None = None) -> Future[LayerBlob]:  # fmt: skip
    """Write the layer blob in the background (zlib releases the GIL: it overlaps the next steps);
    the create lock goes when the entry is committed, or when the write fails or is cancelled."""
    future = executor.submit(write, entry, tree, kind, epoch, level, meta, on_progress)
    if create is not None:
        future.add_done_callback(lambda _: create.release())
    return future


def blob_json(blob: LayerBlob) -> dict[str, Any]:
    data = asdict(blob)
    data["path"] = str(blob.path)
    return data
