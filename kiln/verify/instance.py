"""A fresh container instance: an image's OCI layers unpacked into a new directory, never the build root.

The layout is read by :mod:`kiln.outputs.layout`; the layers are applied (whiteouts, nothing escaping
the new root) by :mod:`kiln.layers.unpack`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiln.layers.unpack import unpack_layers
from kiln.outputs.layout import layer_sources, open_layout


@dataclass(frozen=True)
class Instance:
    """An unpacked image: its root and what it was made from."""

    root: Path
    manifest_digest: str
    layers: int
    skipped_devices: tuple[str, ...] = ()
    """Device nodes in the layers that were not created (see ``allow_devices``)."""


def materialise(layout: Path, dest: Path, *, tag: str | None = None, allow_devices: bool = False) -> Instance:
    """Unpack the image in ``layout`` (tagged ``tag`` or the only one) into the new directory ``dest``.

    ``dest`` must not exist; on failure it is removed again. Ownership is kept when running as root.
    Character and block device nodes are skipped unless ``allow_devices``: a node in an untrusted
    image (say, the host's disk) would give processes in the instance access to host hardware.
    """
    image = open_layout(layout, tag)
    dest = dest.absolute()
    skipped = unpack_layers(layer_sources(image), dest, allow_devices=allow_devices)
    return Instance(dest, image.manifest_digest, len(image.layers), tuple(skipped))


@contextmanager
def fresh_instance(
    layout: Path, scratch: Path, *, tag: str | None = None, allow_devices: bool = False
) -> Iterator[Instance]:
    """A new instance of the image under ``scratch``, deleted when the block ends (however it ends)."""
    scratch.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix="instance-", dir=scratch))
    try:
        yield materialise(layout, holder / "rootfs", tag=tag, allow_devices=allow_devices)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
