"""Shared pieces of the file-system actions: paths inside the root, wildcards, encodings, modes, owners.

Every path is an image path resolved with :func:`kiln.sandbox.paths.resolve_in_root`; tree walks never
follow symbolic links, and every destination written during a copy is resolved again, so a link in
the image can never redirect a write (or a read) to the host.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from kiln.sandbox.paths import PathEscapeError, inside_path, resolve_in_root
from kiln.toe.accounts import UnknownAccount, owner_ids
from kiln.toe.actions.base import ActionContext, ActionFailed

# Go's os.WriteFile/os.MkdirAll modes under the usual umask 022: what AWSTOE's defaults produce.
DEFAULT_FILE_MODE = 0o666 & ~0o022
DEFAULT_DIR_MODE = 0o777 & ~0o022

# AWSTOE: utf-16 and utf-32 without a suffix are little-endian (and written without a BOM).
ENCODINGS = {
    "utf8": "utf-8", "utf16": "utf-16-le", "utf16le": "utf-16-le", "utf16be": "utf-16-be",
    "utf32": "utf-32-le", "utf32le": "utf-32-le", "utf32be": "utf-32-be",
}  # fmt: skip


def _encoding(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # checked like text: otherwise the str coercion would let 8 through unchecked
    if not isinstance(value, str):
        return value
    key = value.strip().lower().replace("-", "").replace("_", "")
    if key not in ENCODINGS:
        raise ValueError(f"unsupported encoding {value!r}; use utf8, utf16, utf32 (optionally -LE or -BE)")
    return ENCODINGS[key]


def _mode(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 0o755 arrives as an octal-typed int; 0755 and 755 arrive as the decimal digits.
        value = format(value, "o") if type(value).__name__ == "OctalInt" else str(value)
    if not isinstance(value, str):
        return value
    text = value.strip().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise ValueError(f"permissions must be an octal mode such as 0755, got {value!r}")
    return text


Encoding = Annotated[str, BeforeValidator(_encoding)]
Mode = Annotated[str, BeforeValidator(_mode)]
PathText = Annotated[str, Field(min_length=1)]


def mode_bits(mode: str) -> int:
    return int(mode, 8)


def host_path(ctx: ActionContext, path: str, *, follow_last: bool = True) -> Path:
    """Where ``path`` (a path inside the image) lives on the host, never outside the root."""
    try:
        return resolve_in_root(ctx.root, path, follow_last=follow_last)
    except PathEscapeError as exc:
        raise ActionFailed(str(exc)) from None


def image_path(ctx: ActionContext, host: Path) -> str:
    return inside_path(ctx.root, host)


def make_dirs(ctx: ActionContext, path: Path, mode: int = DEFAULT_DIR_MODE) -> None:
    """Create ``path`` (already resolved) and its parents, each component re-resolved inside the root."""
    current = "/"
    for part in Path(image_path(ctx, path)).parts[1:]:
        current = f"{current.rstrip('/')}/{part}"
        resolved = host_path(ctx, current)
        if resolved.is_dir():
            continue
        if resolved.exists() or resolved.is_symlink():
            raise ActionFailed(f"{current} exists and is not a folder")
        resolved.mkdir(mode=mode)
        resolved.chmod(mode)


def apply_owner(ctx: ActionContext, path: Path, owner: str | None, group: str | None) -> None:
    if not owner and not group:
        return
    try:
        uid, gid = owner_ids(ctx.root, owner, group)
    except UnknownAccount as exc:
        raise ActionFailed(str(exc)) from None
    os.chown(path, uid, gid, follow_symlinks=False)


def has_wildcard(path: str) -> bool:
    return "*" in path


def expand(ctx: ActionContext, pattern: str, *, kind: str, follow_last: bool = True) -> list[Path]:
    """Host paths matching ``pattern`` (``*`` only in the last component); ``kind`` "file" or "folder".
    With ``follow_last=False`` a matching link is returned itself (moving a link moves the link)."""
    folder, _, name = pattern.rstrip("/").rpartition("/")
    if "*" in folder:
        raise ActionFailed(f"{pattern}: wildcards are accepted only after the last path separator")
    if not has_wildcard(name):
        found = host_path(ctx, pattern)
        ok = found.is_file() if kind == "file" else found.is_dir()
        if not ok:
            raise ActionFailed(f"{pattern}: no such {kind}")
        return [found if follow_last else host_path(ctx, pattern.rstrip("/"), follow_last=False)]
    base = host_path(ctx, folder or "/")
    if not base.is_dir():
        raise ActionFailed(f"{folder or '/'}: no such folder")
    regex = re.compile("^" + ".*".join(re.escape(p) for p in name.split("*")) + "$")
    matches = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if not regex.match(entry.name):
            continue
        target = host_path(ctx, f"{folder}/{entry.name}")
        if (kind == "file" and target.is_file()) or (kind == "folder" and target.is_dir()):
            matches.append(target if follow_last else Path(entry.path))
    if not matches:
        raise ActionFailed(f"{pattern}: no {kind} matches")
    return matches


def name_matches(pattern: str, name: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$"
    return re.match(regex, name) is not None


def _clear(path: Path) -> None:
    """Remove whatever is at ``path`` (never following a link)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def copy_file(src: Path, dest: Path) -> None:
    """Copy one non-directory entry; links are copied as links, special files re-created."""
    st = src.lstat()
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()
    if stat.S_ISLNK(st.st_mode):
        dest.symlink_to(src.readlink())
    elif stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dest, follow_symlinks=False)
    else:
        os.mknod(dest, st.st_mode, st.st_rdev)


def copy_tree(ctx: ActionContext, src: Path, dest_inside: str) -> None:
    """Copy the folder ``src`` (host) to ``dest_inside`` (image path), merging into what exists.

    Each destination entry is resolved inside the root without following its last component, so a
    link already in the destination is replaced, never written through.
    """
    dest = host_path(ctx, dest_inside)
    if dest.exists() and not dest.is_dir():
        _clear(dest)
    if not dest.is_dir():
        make_dirs(ctx, dest)
    shutil.copystat(src, dest)
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        child_src = Path(entry.path)
        child_inside = f"{dest_inside.rstrip('/')}/{entry.name}"
        child_dest = host_path(ctx, child_inside, follow_last=False)
        if entry.is_dir(follow_symlinks=False):
            if child_dest.is_symlink() or (child_dest.exists() and not child_dest.is_dir()):
                _clear(child_dest)
            copy_tree(ctx, child_src, child_inside)
        else:
            if child_dest.is_dir() and not child_dest.is_symlink():
                shutil.rmtree(child_dest)
            copy_file(child_src, child_dest)


def destination_for(ctx: ActionContext, source: Path, destination: str, *, many: bool) -> tuple[str, Path]:
    """(image path, host path) a source lands on: trailing ``/`` or an existing folder means "into"."""
    if many and not destination.endswith("/"):
        raise ActionFailed(f"destination {destination!r} must end with / when the source has a wildcard")
    into = destination.endswith("/")
    if not into:
        existing = host_path(ctx, destination)
        into = existing.is_dir() and source.is_file()
    inside = f"{destination.rstrip('/')}/{source.name}" if into else destination
    return inside, host_path(ctx, inside)


def walk(top: Path) -> list[Path]:
    """Every entry below ``top`` (not following links), parents before children."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        base = Path(dirpath)
        out.extend(base / d for d in sorted(dirnames))
        out.extend(base / f for f in sorted(filenames))
    return out
