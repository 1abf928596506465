"""Shared pieces of the file-system actions: paths inside the root, encodings, modes, owners."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from kiln.sandbox.paths import PathEscapeError, resolve_in_root
from kiln.toe.accounts import UnknownAccount, owner_ids
from kiln.toe.actions.base import ActionContext, ActionFailed

# Go's os.WriteFile/os.MkdirAll modes under the usual umask 022: what AWSTOE's defaults produce.
DEFAULT_FILE_MODE = 0o666 & ~0o022
DEFAULT_DIR_MODE = 0o777 & ~0o022

ENCODINGS = {
    "utf8": "utf-8", "utf-8": "utf-8",
    "utf16": "utf-16", "utf-16": "utf-16", "utf16le": "utf-16-le", "utf-16le": "utf-16-le",
    "utf16be": "utf-16-be", "utf-16be": "utf-16-be",
    "utf32": "utf-32", "utf-32": "utf-32", "utf32le": "utf-32-le", "utf-32le": "utf-32-le",
    "utf32be": "utf-32-be", "utf-32be": "utf-32-be",
}  # fmt: skip


def _encoding(value: str) -> str:
    key = value.strip().lower().replace("_", "-")
    if key not in ENCODINGS:
        raise ValueError(f"unsupported encoding {value!r}; use utf8, utf16, utf32 (optionally LE/BE)")
    return ENCODINGS[key]


def _mode(value: str) -> str:
    text = value.strip()
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"permissions must be an octal mode such as 0755, got {value!r}") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"permissions {value!r} out of range (0000-7777)")
    return text


Encoding = Annotated[str, AfterValidator(_encoding)]
Mode = Annotated[str, AfterValidator(_mode)]
PathText = Annotated[str, Field(min_length=1)]


def mode_bits(mode: str) -> int:
    return int(mode, 8)


def host_path(ctx: ActionContext, path: str, *, follow_last: bool = True) -> Path:
    """Where ``path`` (a path inside the image) lives on the host, never outside the root."""
    try:
        return resolve_in_root(ctx.root, path, follow_last=follow_last)
    except PathEscapeError as exc:
        raise ActionFailed(str(exc)) from None


def make_dirs(ctx: ActionContext, path: Path, mode: int = DEFAULT_DIR_MODE) -> None:
    """Create ``path`` (already resolved) and its parents, each component re-resolved inside the root."""
    root = ctx.root
    try:
        rel = path.relative_to(root) if root != Path("/") else path.relative_to("/")
    except ValueError:
        raise ActionFailed(f"{path} is outside the image root") from None
    current = "/"
    for part in rel.parts:
        current = f"{current.rstrip('/')}/{part}"
        resolved = resolve_in_root(root, current)
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


def display(ctx: ActionContext, path: str) -> str:
    return path
