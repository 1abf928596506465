"""Walk a root or an overlayfs upper dir into the sorted list of tar entries of its layer.

Overlay conventions (kernel ``Documentation/filesystems/overlayfs.rst``) are turned into OCI ones
(image-spec ``layer.md``): a whiteout (char device 0:0, or a zero-size file carrying the
``overlay.whiteout`` xattr) becomes an empty ``.wh.<name>`` file; an opaque directory
(``overlay.opaque`` = ``y``) becomes the directory plus ``<dir>/.wh..wh..opq``. Overlay features the OCI
format cannot express (``redirect``, ``metacopy``) are refused rather than silently producing a layer
that lacks data.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kiln.errors import KilnError

LayerKind = Literal["rootfs", "upper"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
KEPT_XATTRS = ("security.capability",)
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
# Directories kept as (empty) mount points: their contents are never part of an image.
CONTENTS_SKIPPED = frozenset({"proc", "sys"})
# mmdebstrap in root mode creates device nodes here; the runtime provides /dev.
DEVICES_SKIPPED_UNDER = "dev"

EntryType = Literal["file", "dir", "symlink", "fifo", "chr", "blk", "whiteout"]


class LayerError(KilnError):
    """A directory cannot be turned into a faithful layer."""


@dataclass(frozen=True)
class Entry:
    """One tar member: ``name`` is its path in the layer, ``path`` the file it comes from."""

    name: str
    path: Path
    st: os.stat_result
    type: EntryType
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def sort_key(self) -> bytes:
        return os.fsencode(self.name)


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    wanted = [n for n in names if n in KEPT_XATTRS or n.startswith(OVERLAY_XATTR_PREFIXES)]
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in wanted}


def _overlay(xattrs: dict[str, bytes], key: str) -> bytes | None:
    for prefix in OVERLAY_XATTR_PREFIXES:
        if prefix + key in xattrs:
            return xattrs[prefix + key]
    return None


def _kept(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in xattrs.items() if k in KEPT_XATTRS}


def _refuse_unrepresentable(rel: str, xattrs: dict[str, bytes]) -> None:
    for feature in ("redirect", "metacopy"):
        if _overlay(xattrs, feature) is not None:
            raise LayerError(
                f"layer entry {rel!r} uses overlayfs '{feature}', which an OCI layer cannot express",
                hint="mount the overlay with redirect_dir=off,metacopy=off",
            )


def _parent_of(rel: str) -> str:
    head, _, _ = rel.rpartition("/")
    return head + "/" if head else ""


def scan(source: Path, kind: LayerKind) -> list[Entry]:
    """All entries of the layer for ``source``, sorted bytewise by path (parents before children)."""
    if kind not in ("rootfs", "upper"):
        raise ValueError(f"unknown layer kind {kind!r}")
    if not source.is_dir() or source.is_symlink():
        raise LayerError(f"layer source is not a directory: {source}")
    entries: list[Entry] = []
    stack: list[tuple[Path, str]] = [(source, "")]
    upper = kind == "upper"
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            children = list(it)
        for child in children:
            rel = prefix + child.name
            if child.name.startswith(WHITEOUT_PREFIX):
                raise LayerError(
                    f"{source}: file name {rel!r} starts with '{WHITEOUT_PREFIX}', reserved for OCI whiteouts"
                )
            path = Path(child.path)
            st = child.stat(follow_symlinks=False)
            mode = st.st_mode
            top = rel.split("/", 1)[0]
            if stat.S_ISDIR(mode):
                xattrs = _xattrs(path)
                if upper:
                    _refuse_unrepresentable(rel, xattrs)
                entries.append(Entry(rel, path, st, "dir", _kept(xattrs)))
                if upper and _overlay(xattrs, "opaque") == b"y":
                    entries.append(Entry(f"{rel}/{OPAQUE_MARKER}", path, st, "whiteout"))
                if rel not in CONTENTS_SKIPPED:
                    stack.append((path, rel + "/"))
            elif stat.S_ISREG(mode):
                xattrs = _xattrs(path)
                if upper:
                    _refuse_unrepresentable(rel, xattrs)
                    if st.st_size == 0 and _overlay(xattrs, "whiteout") is not None:
                        entries.append(
                            Entry(_parent_of(rel) + WHITEOUT_PREFIX + child.name, path, st, "whiteout")
                        )
                        continue
                entries.append(Entry(rel, path, st, "file", _kept(xattrs)))
            elif stat.S_ISLNK(mode):
                entries.append(Entry(rel, path, st, "symlink"))
            elif stat.S_ISCHR(mode) and upper and st.st_rdev == 0:
                entries.append(Entry(_parent_of(rel) + WHITEOUT_PREFIX + child.name, path, st, "whiteout"))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                if top != DEVICES_SKIPPED_UNDER:
                    entries.append(Entry(rel, path, st, "chr" if stat.S_ISCHR(mode) else "blk"))
            elif stat.S_ISFIFO(mode):
                entries.append(Entry(rel, path, st, "fifo"))
            # Sockets (and anything else) are runtime objects: never part of a layer.
    entries.sort(key=lambda e: e.sort_key)
    return entries
