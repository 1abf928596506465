"""User and group names resolved in the image's ``/etc/passwd`` and ``/etc/group`` (never the host's)."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import KilnError
from kiln.sandbox.paths import resolve_in_root


class UnknownAccount(KilnError):
    """A user or group name the image does not define."""


def _table(root: Path, name: str) -> dict[str, tuple[int, int | None]]:
    """name -> (id, primary gid for passwd entries)."""
    path = resolve_in_root(root, f"/etc/{name}")
    entries: dict[str, tuple[int, int | None]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return entries
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            ident = int(fields[2])
            gid = int(fields[3]) if name == "passwd" and len(fields) > 3 else None
        except ValueError:
            continue
        entries.setdefault(fields[0], (ident, gid))
    return entries


def _numeric(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(root: Path, user: str) -> tuple[int, int | None]:
    """(uid, primary gid) of ``user`` (a name or a number) inside the image."""
    number = _numeric(user)
    users = _table(root, "passwd")
    if number is not None:
        for uid, gid in users.values():
            if uid == number:
                return uid, gid
        return number, None
    if user not in users:
        raise UnknownAccount(f"user {user!r} does not exist in the image (/etc/passwd)")
    return users[user]


def resolve_group(root: Path, group: str) -> int:
    """gid of ``group`` (a name or a number) inside the image."""
    number = _numeric(group)
    if number is not None:
        return number
    groups = _table(root, "group")
    if group not in groups:
        raise UnknownAccount(f"group {group!r} does not exist in the image (/etc/group)")
    return groups[group][0]


def owner_ids(root: Path, owner: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) for chown; -1 leaves a part unchanged. An owner without a group also sets the
    owner's primary group (AWSTOE: "the group that the user belongs to")."""
    uid, gid = -1, -1
    if owner:
        uid, primary = resolve_user(root, owner)
        if primary is not None and not group:
            gid = primary
    if group:
        gid = resolve_group(root, group)
    return uid, gid
