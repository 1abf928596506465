"""A fresh container instance: an image's OCI layers unpacked into a new directory, never the build root.

The layout is read by :mod:`kiln.outputs.layout`; the layers are applied (whiteouts, nothing escaping
the new root) by :mod:`kiln.layers.unpack`. :func:`image_root` is the one way from a catalogued image
reference to a root directory (``kiln toe run --target image:``, the evidence commands).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import KilnError
from kiln.layers.extract import read_files, write_files
from kiln.layers.unpack import unpack_layers
from kiln.monitor import Monitor
from kiln.outputs.layout import layer_sources, open_layout
from kiln.store import Store

if TYPE_CHECKING:
    from kiln.catalog.schemas import ImageRecord


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


@dataclass(frozen=True)
class ImageRoot:
    """A catalogued image version and a root directory made from its OCI layout."""

    record: ImageRecord
    root: Path


@contextmanager
def image_root(
    store: Store,
    ref: str,
    *,
    only: frozenset[str] | None = None,
    keep: bool = False,
    monitor: Monitor | None = None,
    new_instance: bool = False,
) -> Iterator[ImageRoot]:
    """The image ``ref`` (NAME, NAME@VERSION or NAME@VERSION/BUILD) unpacked into a new directory under
    the data dir's ``tmp/``, removed afterwards unless ``keep`` (then it moves to ``<data dir>/kept/``).

    ``only``: extract just these paths (a partial root, much faster; never kept). ``new_instance``: the
    root becomes an instance of the image (``kiln toe run --target image:``), which a disabled image
    may not; a retired image has nothing left to unpack either way.
    """
    from kiln.catalog import Catalog  # the catalog's engine is loaded only when an image is named
    from kiln.lifecycle.states import require_usable

    with Catalog.open(store.database_url) as catalog:
        record = catalog.get_image(ref)
    if new_instance:
        warning = require_usable(record, "used for new instances")
        if warning and monitor is not None:
            monitor.warning(warning)
    elif record.state == "retired":
        raise KilnError(
            f"{record.ref} is retired: its artifacts are deleted, there is no root to read",
            hint=f"its recorded SBOMs and reports remain: kiln sbom {record.ref}; kiln verify {record.ref}",
        )
    layouts = [a for a in record.artifacts if a.kind == "oci"]
    if not layouts:
        raise KilnError(
            f"image {record.ref} has no OCI layout artifact to unpack",
            hint="build it with the oci output, or name a root directory instead",
        )
    layout = store.artifact_file(layouts[0])
    holder = Path(tempfile.mkdtemp(prefix="image-", dir=store.home / "tmp"))
    root = holder / "rootfs"
    try:
        if only is not None:
            root.mkdir()
            write_files(read_files(layer_sources(open_layout(layout)), only.__contains__), root)
            keep = False
        elif monitor is not None:
            with monitor.stage("image", f"unpack {record.ref}"):
                materialise(layout, root)
        else:
            materialise(layout, root)
        yield ImageRoot(record, root)
    finally:
        if keep and root.is_dir():
            kept = store.home / "kept" / holder.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            holder.rename(kept)
            if monitor is not None:
                monitor.info(f"kept the root filesystem of {record.ref} at {kept / 'rootfs'}")
        else:
            shutil.rmtree(holder, ignore_errors=True)
