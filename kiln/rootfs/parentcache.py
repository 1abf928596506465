"""The parent cache: ``cache/parents/<entry>/`` holds the versions of one parent's root.

    lock        held by the one build making a new version (bootstrap, then the copy into the cache)
    current     symlink to the version builds use; replaced by one rename: the commit point
    v-<id>/     a version: rootfs/, parent.json and lease (held shared by every build using it)
    parent.json, rootfs/, lease   a version in the layout from before versions (its id is "")

``--refresh-parent`` makes a new version beside the current one and swaps ``current`` once it is
complete. The old version stays while any build holds its lease: the last one removes it on release
(or the next build making a version does). Rules shared with the other caches: kiln.cachelock (locks,
atomic commits) and kiln.cachestore (a version is complete when its ``parent.json`` reads back).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.cachelock import FileLock, discard, fsync_dir, try_exclusive
from kiln.cachestore import read_marker, write_marker

META_NAME = "parent.json"


@dataclass
class Version:
    """A complete version of a cached parent, leased (shared lock) until ``release``."""

    entry: Path
    dir: Path
    meta: dict[str, Any]
    lease: FileLock = field(repr=False)

    @property
    def id(self) -> str:
        return "" if self.dir == self.entry else self.dir.name

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    def release(self) -> None:
        """Drop the lease; the last user of a version that is no longer current removes it."""
        self.lease.release()
        if current_dir(self.entry) != self.dir:
            collect(self.entry, self.dir)


def current_dir(entry: Path) -> Path | None:
    """The directory of the current complete version, or None."""
    link = entry / "current"
    if link.is_symlink():
        return entry / link.readlink()
    if read_marker(entry / META_NAME) is not None:
        return entry  # the layout from before versions
    return None


def current_meta(entry: Path) -> dict[str, Any] | None:
    """``parent.json`` of the current version (no lease: for a look only)."""
    directory = current_dir(entry)
    return read_marker(directory / META_NAME) if directory else None


def lease_current(entry: Path) -> Version | None:
    """A lease on the current complete version, or None when there is none."""
    while True:
        directory = current_dir(entry)
        if directory is None:
            return None
        lease = FileLock(directory / "lease")
        try:
            lease.acquire(shared=True)
        except FileNotFoundError:
            continue  # removed while we looked: look again
        meta = read_marker(directory / META_NAME)
        if meta is None:
            lease.release()
            continue
        return Version(entry, directory, meta, lease)


def new_version(entry: Path) -> Path:
    """A new, empty version directory: nobody looks at it before ``publish``."""
    directory = entry / f"v-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    return directory


def publish(entry: Path, directory: Path, meta: dict[str, Any]) -> None:
    """Commit a finished version (``directory/rootfs``): synced, then made current by one rename.
    The version it replaces goes now if nobody uses it, else when its last user releases it."""
    write_marker(directory / META_NAME, meta, sync=directory)
    previous = current_dir(entry)
    link = entry / f".current-{uuid.uuid4().hex[:8]}"
    link.symlink_to(directory.name)
    os.replace(link, entry / "current")
    fsync_dir(entry)
    if previous is not None and previous != directory:
        collect(entry, previous)


def collect(entry: Path, directory: Path) -> bool:
    """Remove a version that is not current, unless a build holds its lease; True when removed."""
    try:
        held = try_exclusive(directory / "lease")
    except FileNotFoundError:
        return False  # already gone
    if held is None:
        return False
    try:
        if current_dir(entry) == directory:
            return False
        if directory == entry:  # the old layout: drop its marker first, then its root
            (entry / META_NAME).unlink(missing_ok=True)
            discard(entry / "rootfs")
        else:
            discard(directory)
        return True
    finally:
        held[0].release()


def sweep(entry: Path) -> None:
    """Remove what dead builds left and old versions nobody uses. Only under the entry's lock: an
    unfinished version then belongs to no live build."""
    current = current_dir(entry)
    for child in sorted(entry.iterdir()):
        if child.name.startswith(".trash-"):
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(".current-"):
            child.unlink()
        elif child.name.startswith("v-") and child != current:
            if read_marker(child / META_NAME) is not None:
                collect(entry, child)
            else:
                shutil.rmtree(child, ignore_errors=True)
    if current is not None and current != entry and read_marker(entry / META_NAME) is not None:
        collect(entry, entry)
