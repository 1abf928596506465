"""RAM-backed scratch for short-lived, write-heavy work (a Debian bootstrap).

dpkg syncs each file it unpacks and its database after every package. On a disk, and above all on a
virtual disk shared with other guests, those syncs dominate a bootstrap: measured on the 2-core
build machines, mmdebstrap of a minbase root took 40 s into /var/tmp and 26 s into a tmpfs, and
copying the finished root to the disk took 1.8 s. The tmpfs is only a size limit (memory is used as
it fills) and lives in the build's private mount namespace when there is one, so even a SIGKILL
frees it. ``KILN_TMPFS=0`` (the settings' ``tmpfs``) turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.sandbox.overlay import umount
from kiln.sandbox.run import run

MIN_BYTES = 2 << 30  # below this much spare memory, use the disk


def spare_memory() -> int:
    """Half of MemAvailable: what a tmpfs may grow to without starving the build's own processes."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 0


def enabled(allowed: bool = True) -> bool:
    """Can a RAM scratch be used (``allowed``: the settings' ``tmpfs``, ``KILN_TMPFS``)?"""
    return allowed and os.geteuid() == 0 and spare_memory() >= MIN_BYTES


def nearly_full(path: Path) -> bool:
    """True when the file system holding ``path`` has less than 2% left (a bootstrap ran out)."""
    st = os.statvfs(path)
    return st.f_bavail < st.f_blocks // 50


@contextmanager
def ram_scratch(target: Path, allowed: bool = True) -> Iterator[bool]:
    """Mount a tmpfs at ``target`` (created if missing) when possible; yields whether it did.

    The mount is undone when the block ends, however it ends.
    """
    target.mkdir(parents=True, exist_ok=True)
    if not enabled(allowed):
        yield False
        return
    options = f"size={spare_memory()},mode=0755"
    done = run(["mount", "-t", "tmpfs", "-o", options, "kiln-scratch", str(target)], check=False)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        umount(target)
