"""Overlay mounts: a component's changes land in an upper directory that becomes its layer.

The lower directories are the parent root and the upper directories of earlier components (as
overlayfs reads them, whiteouts included). Mounts are always undone when the block ends, however
it ends; :func:`sweep_stale_mounts` removes leftovers of a killed process under a directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import KilnError
from kiln.sandbox.run import run

# The mount options string is limited to one page; relative lowerdirs (resolved from a common cwd)
# keep long layer stacks within it.
MAX_OPTIONS = 4000


def _mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path, readonly: bool) -> None:
    base = Path(os.path.commonpath([str(p) for p in (*lowers, upper, work)]))
    rel = [os.path.relpath(p, base) for p in lowers]
    options = f"lowerdir={':'.join(rel)},upperdir={os.path.relpath(upper, base)}"
    # No redirects or metacopy-only files: an OCI layer cannot express them.
    options += f",workdir={os.path.relpath(work, base)},redirect_dir=off,metacopy=off"
    if readonly:
        options += ",ro"
    if len(options) > MAX_OPTIONS:
        raise KilnError(
            f"too many layers to stack ({len(lowers)}): overlay mount options exceed one page",
            hint="split the recipe: build a base image and use it as the parent of another recipe",
        )
    run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)], cwd=base)


def umount(target: Path) -> None:
    """Unmount, falling back to a lazy unmount when something still holds the mount busy."""
    result = run(["umount", str(target)], check=False)
    if result.returncode != 0:
        run(["umount", "--lazy", str(target)], check=False)


@contextmanager
def overlay(lowers: Sequence[Path], upper: Path, scratch: Path, *, readonly: bool = False) -> Iterator[Path]:
    """Mount ``lowers`` (topmost first) with ``upper`` on top; yield the merged root.

    ``scratch`` holds the work and mount-point directories; ``upper`` is created if missing.
    """
    if not lowers:
        raise ValueError("overlay needs at least one lower directory")
    upper.mkdir(parents=True, exist_ok=True)
    work = scratch / f"{upper.name}.work"
    merged = scratch / f"{upper.name}.merged"
    work.mkdir(parents=True, exist_ok=True)
    merged.mkdir(parents=True, exist_ok=True)
    _mount_overlay(lowers, upper, work, merged, readonly)
    try:
        yield merged
    finally:
        umount(merged)


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory`` (from /proc/self/mounts), deepest first."""
    prefix = str(directory.resolve())
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def sweep_stale_mounts(directory: Path) -> list[Path]:
    """Unmount whatever a killed build left mounted under ``directory``; returns what was unmounted."""
    stale = mounts_under(directory)
    for point in stale:
        umount(point)
    return stale
