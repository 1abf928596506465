"""Safe path resolution inside an image root, as if the root were ``/`` (what ``chroot`` would see).

``..`` never climbs above the root, absolute symlinks restart at the root, relative symlinks are
followed component by component: a path can never name a host file outside the root. File actions
and file conditions resolve every path through :func:`resolve_in_root` and then operate on the host
path it returns. Steps run one at a time and nothing else writes to the root while a file action
works, so the check-then-use window is not exploitable by the image itself.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from kiln.errors import KilnError

MAX_SYMLINKS = 40  # like Linux's ELOOP limit


class PathEscapeError(KilnError):
    """A path could not be resolved inside the root (symlink loop, bad input)."""


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve_in_root(root: Path, path: str | PurePosixPath, *, follow_last: bool = True) -> Path:
    """Host path of ``path`` (absolute or relative to ``/``) interpreted inside ``root``.

    Every symlink met on the way is resolved inside ``root``; with ``follow_last=False`` the last
    component is left as it is (to create, delete or inspect a symlink itself). Missing components
    are fine: the result is where the file would be created.
    """
    text = str(path)
    if "\x00" in text:
        raise PathEscapeError(f"invalid path {text!r}: contains a NUL byte")
    root = Path(os.path.abspath(root))  # noqa: PTH100 - no symlink resolution on the host side
    if root == Path("/"):
        # Host target: ordinary resolution is already "inside the root".
        joined = "/" + "/".join(_split(text))
        if follow_last:
            return Path(os.path.realpath(joined))
        parent, _, name = joined.rpartition("/")
        base = Path(os.path.realpath(parent or "/"))
        return base / name if name else base
    pending = _split(text)
    pending.reverse()  # a stack: next component at the end
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if not pending and not follow_last:
            resolved.append(part)
            break
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise PathEscapeError(f"{text}: too many levels of symbolic links ({os.strerror(errno.ELOOP)})")
        target = str(candidate.readlink())
        if target.startswith("/"):
            resolved = []
        for item in reversed(_split(target)):
            pending.append(item)
    return root.joinpath(*resolved)


def inside_path(root: Path, host_path: Path) -> str:
    """The image-side spelling (``/etc/x``) of a host path under ``root``."""
    root = Path(os.path.abspath(root))  # noqa: PTH100
    if root == Path("/"):
        return str(host_path)
    rel = Path(os.path.abspath(host_path)).relative_to(root)  # noqa: PTH100
    return "/" + str(rel) if str(rel) != "." else "/"
