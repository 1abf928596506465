"""Throwaway roots: ``--target image:NAME[@VERSION[/BUILD]]`` (a catalogued image's layers unpacked into
a new directory) and ``--scratch`` (an overlay on a root directory, whose changes are discarded)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import KilnError
from kiln.monitor import Monitor
from kiln.store import Store


@contextmanager
def resolve_image_target(ref: str, store: Store, monitor: Monitor, *, keep: bool = False) -> Iterator[Path]:
    """Unpack the image's OCI layers into a new directory; removed afterwards unless ``keep`` (then it
    moves to ``<data dir>/kept/``)."""
    try:
        from kiln.catalog.catalog import Catalog
        from kiln.verify.instance import materialise
    except ModuleNotFoundError as exc:  # the catalog or the unpacker is not part of this installation
        raise KilnError(f"--target image: not available yet ({exc.name} is missing)") from None
    with Catalog.open(store.database_url) as catalog:
        image = catalog.get_image(ref)
    layouts = [a for a in image.artifacts if a.kind == "oci"]
    if not layouts:
        raise KilnError(
            f"image {image.ref} has no OCI layout artifact to unpack",
            hint="build it with the oci output, or run against a root directory with --target rootfs:PATH",
        )
    holder = Path(tempfile.mkdtemp(prefix="toe-image-", dir=store.home / "tmp"))
    root = holder / "rootfs"
    try:
        with monitor.stage("image", f"unpack {image.ref}"):
            materialise(Path(layouts[0].path), root)
        yield root
    finally:
        if keep and root.is_dir():
            kept = store.home / "kept" / holder.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            holder.rename(kept)
            monitor.info(f"kept the root filesystem of {image.ref} at {kept / 'rootfs'}")
        else:
            shutil.rmtree(holder, ignore_errors=True)


@contextmanager
def scratch_overlay(root: Path, store: Store) -> Iterator[Path]:
    """``root`` seen through an overlay: steps change only the overlay, which is discarded afterwards."""
    from kiln.sandbox.overlay import overlay

    with (
        store.scratch("toe-scratch-") as scratch,
        overlay([root.absolute()], scratch / "upper", scratch) as merged,
    ):
        yield merged
