"""``rootfs-tar``: the image's flattened root filesystem as one tar (what ``docker export`` gives),
for ``machinectl import-tar``, WSL, ``lxc-create -t local`` and friends."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kiln.layers.tar import write_layer
from kiln.layers.unpack import unpack_layers
from kiln.outputs.archive import Archive
from kiln.outputs.layout import layer_sources, open_layout


def write_rootfs_tar(
    layout: Path,
    dest: Path,
    *,
    tag: str | None = None,
    compress: bool = True,
    epoch: int | None = None,
    scratch: Path | None = None,
) -> Archive:
    """Flatten the image in ``layout`` (whiteouts applied) into a deterministic tar at ``dest``
    (gzip-compressed unless ``compress=False``). The layers are unpacked into a temporary directory
    under ``scratch`` (default: next to ``dest``), removed afterwards.

    When the merged root is already on disk, ``kiln.layers.tar.write_layer(root, dest, kind="rootfs")``
    gives the same tar without unpacking.
    """
    image = open_layout(layout, tag)
    if epoch is None:
        epoch = image.created_epoch or 0
    work_parent = scratch or dest.parent
    work_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=work_parent))
    try:
        root = work / "rootfs"
        unpack_layers(layer_sources(image), root)
        blob = write_layer(root, dest, epoch=epoch, kind="rootfs", compress=compress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Archive(blob.path, blob.digest, blob.size)
