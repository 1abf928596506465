"""One keyed "get / commit entry" API for Kiln's caches, with one completeness rule.

Every cache entry (a layer's ``layer.json``, a parent version's ``parent.json``, the ``validated`` and
``tested`` markers, the evidence memo) is made complete by one *marker*: a JSON object written last,
after what it describes was synced, by one ``rename(2)`` (:func:`kiln.cachelock.write_atomic`).

**An entry is complete when its marker parses as a JSON object and every file it depends on exists.**
Anything else (no marker, a marker from an interrupted non-atomic writer, a blob removed since) is
not an entry: :meth:`KeyedCache.get` returns None and the next maker replaces it. Like osbuild's
ObjectStore, readers only ever see committed entries; the locks that keep two makers of one key from
racing and users' leases are :mod:`kiln.cachelock`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.cachelock import FileLock, discard, syncfs, try_exclusive, write_atomic

Meta = dict[str, Any]
Requires = Iterable[Path] | Callable[[Meta], Iterable[Path]]


def read_marker(
    marker: Path, requires: Iterable[Path] | Callable[[Meta], Iterable[Path]] = ()
) -> Meta | None:
    """The completeness rule: ``marker``'s JSON object when it and every required file exist, else None.

    ``requires``: files the entry needs, or a function of the marker's data naming them.
    """
    try:
        meta = json.loads(marker.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    needed = requires(meta) if callable(requires) else requires
    return meta if all(path.is_file() for path in needed) else None


def write_marker(marker: Path, meta: Meta, *, sync: Path | None = None) -> None:
    """Commit an entry: sync its contents (the file system holding ``sync``), then write ``marker``
    whole by one rename. Nothing reads the entry as complete before this returns."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    if sync is not None:
        syncfs(sync)
    write_atomic(marker, json.dumps(meta, indent=2, sort_keys=True, default=str))


@dataclass(frozen=True)
class KeyedCache:
    """Entries under ``root`` by key: a directory ``<root>/<key>/`` committed by its ``marker_name``
    file, or (``marker_name`` None) just the marker ``<root>/<key>.json``.

    ``requires`` names, from an entry's directory and marker data, the files it needs to be complete.
    The create lock and the lease of an entry sit beside it (``<key>.lock``, ``<key>.lease``), so
    they outlive its removal.
    """

    root: Path
    marker_name: str | None = None
    requires: Callable[[Path, Meta], Iterable[Path]] | None = None

    def entry_dir(self, key: str) -> Path:
        return self.root / key

    def marker(self, key: str) -> Path:
        if self.marker_name is None:
            return self.root / f"{key}.json"
        return self.entry_dir(key) / self.marker_name

    def get(self, key: str) -> Meta | None:
        """The complete entry's marker data, or None."""
        requires = self.requires
        if requires is None:
            return read_marker(self.marker(key))
        entry = self.entry_dir(key)
        return read_marker(self.marker(key), lambda meta: requires(entry, meta))

    def commit(self, key: str, meta: Meta) -> None:
        """Make the entry complete (its directory, if any, is synced first)."""
        sync = self.entry_dir(key) if self.marker_name is not None else None
        write_marker(self.marker(key), meta, sync=sync)

    def lock_paths(self, key: str) -> tuple[Path, Path]:
        """(create lock, lease) of the entry."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{key}.lock", self.root / f"{key}.lease"

    def create_lock(self, key: str) -> FileLock:
        return FileLock(self.lock_paths(key)[0])

    def lease(self, key: str) -> FileLock:
        return FileLock(self.lock_paths(key)[1])

    def discard(self, key: str) -> None:
        """Remove the entry, complete or not (its maker holds the create lock)."""
        if self.marker_name is None:
            self.marker(key).unlink(missing_ok=True)
        else:
            discard(self.entry_dir(key))

    def remove(self, key: str) -> bool:
        """Remove the entry unless someone makes or uses it (for gc); True when removed."""
        held = try_exclusive(*self.lock_paths(key))
        if held is None:
            return False
        try:
            self.discard(key)
            return True
        finally:
            for lock in held:
                lock.release()
