"""Sizes as people read them."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``1536`` → ``1.5 KiB``; bytes below 1 KiB stay whole (``512 B``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
