"""The layer cache: ``cache/layers/<key>/`` holds a layer's tree, its ``layer.tar.gz`` and ``layer.json``.

``layer.json`` is written last, so its presence marks a complete entry; anything else found under a
key is debris of an interrupted build and is replaced.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from kiln.layers.tar import LayerBlob, write_layer
from kiln.sandbox.run import run
from kiln.store import Store

BLOB_NAME = "layer.tar.gz"
META_NAME = "layer.json"


def load(store: Store, key: str) -> tuple[LayerBlob, dict[str, Any]] | None:
    """A complete cached layer, or None."""
    entry = store.layer_dir(key)
    meta_path = entry / META_NAME
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    blob = LayerBlob(entry / BLOB_NAME, meta["digest"], meta["diff_id"], meta["size"])
    if not blob.path.is_file():
        return None
    return blob, meta


def done(value: LayerBlob) -> Future[LayerBlob]:
    future: Future[LayerBlob] = Future()
    future.set_result(value)
    return future


def adopt_tree(store: Store, key: str, tree: Path) -> Path:
    """Move a finished upper directory into the cache entry for ``key``; returns its new path."""
    entry = store.layer_dir(key)
    if entry.exists():
        shutil.rmtree(entry)
    entry.mkdir(parents=True)
    target = entry / "upper"
    try:
        os.replace(tree, target)
    except OSError as exc:  # the upper dir was in the memory scratch space: copy it to the disk
        if exc.errno != errno.EXDEV:
            raise
        run(["cp", "-a", str(tree), str(target)])  # keeps whiteouts, opaque xattrs, hard links
        shutil.rmtree(tree)
    return target


def _write(entry: Path, tree: Path, kind: Literal["rootfs", "upper"], epoch: int, level: int,
           meta: dict[str, Any]) -> LayerBlob:  # fmt: skip
    tmp = entry / f"{BLOB_NAME}.partial"
    blob = write_layer(tree, tmp, epoch=epoch, kind=kind, compresslevel=level)
    final = entry / BLOB_NAME
    os.replace(tmp, final)
    record = {**meta, "digest": blob.digest, "diff_id": blob.diff_id, "size": blob.size}
    meta_tmp = entry / f"{META_NAME}.partial"
    meta_tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    os.replace(meta_tmp, entry / META_NAME)
    return LayerBlob(final, blob.digest, blob.diff_id, blob.size)


def schedule(executor: ThreadPoolExecutor, store: Store, key: str, tree: Path,
             kind: Literal["rootfs", "upper"], epoch: int, level: int,
             meta: dict[str, Any]) -> Future[LayerBlob]:  # fmt: skip
    """Write the layer blob in the background (zlib releases the GIL: it overlaps the next steps)."""
    entry = store.layer_dir(key)
    entry.mkdir(parents=True, exist_ok=True)
    return executor.submit(_write, entry, tree, kind, epoch, level, meta)


def blob_json(blob: LayerBlob) -> dict[str, Any]:
    data = asdict(blob)
    data["path"] = str(blob.path)
    return data
