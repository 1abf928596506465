"""``kiln toe run --scratch``: an overlay on a root directory, whose changes are discarded.
(``--target image:`` unpacks a catalogued image with :func:`kiln.verify.instance.image_root`.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.store import Store


@contextmanager
def scratch_overlay(root: Path, store: Store) -> Iterator[Path]:
    """``root`` seen through an overlay: steps change only the overlay, which is discarded afterwards."""
    from kiln.sandbox.overlay import overlay

    with (
        store.scratch("toe-scratch-") as scratch,
        overlay([root.absolute()], scratch / "upper", scratch) as merged,
    ):
        yield merged
