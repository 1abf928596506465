"""A full disk, explained: which path, how much is free there, and how much the work needs.

ENOSPC reaches Kiln in several shapes: an ``OSError`` from Python's own writes (often without a file
name, when a ``write`` on an open file fails), a subprocess that printed "No space left on device",
SQLite's "database or disk is full". :func:`as_disk_full` turns each into one :class:`DiskFull`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from kiln.errors import CommandFailed, KilnError
from kiln.units import human_size

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_MESSAGES = ("No space left on device", "database or disk is full", "Disk quota exceeded")


def mount_point(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


class DiskFull(KilnError):
    """A write failed because a file system is full (or over quota)."""

    def __init__(self, path: Path, *, needed: int | None = None) -> None:
        self.path = path
        where = mount_point(path)
        st = os.statvfs(where)
        self.free, self.total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        need = f"; this needs about {human_size(needed)}" if needed else ""
        free, total = human_size(self.free), human_size(self.total)
        super().__init__(
            f"no space left on device writing {path}: {free} free of {total} on {where}{need}",
            hint=f"free space on {where} (`kiln gc` reclaims what dead builds left) or point KILN_HOME / "
            "KILN_CACHE_DIR at a larger file system",
        )


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, DiskFull):
        return False
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return True
    text = exc.output_tail if isinstance(exc, CommandFailed) else str(exc)
    return isinstance(exc, Exception) and any(m in text for m in FULL_MESSAGES)


def as_disk_full(exc: BaseException, default: Path, *, needed: int | None = None) -> DiskFull | None:
    """A :class:`DiskFull` for ``exc`` if it is a full disk (naming its file, else ``default``), else None."""
    if not is_disk_full(exc):
        return None
    filename = None
    if isinstance(exc, OSError):  # a failed copy names (source, destination): the destination is full
        filename = exc.filename2 or exc.filename
    return DiskFull(Path(os.fsdecode(filename)) if filename else default, needed=needed)
