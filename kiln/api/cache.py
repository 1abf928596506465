"""Answers of read endpoints, kept until the catalog changes.

SQLite only: ``PRAGMA data_version`` on a connection of the cache's own, which never writes, changes
whenever any other connection (of this process or any other: a build recording its image, a lifecycle
change, an audit row) commits, so a cached answer is never older than the last commit. Files the
answers read (evidence blobs) are content-addressed and never change. Other databases: no caching.

Concurrent misses of one key make the value once (the others wait for it): after a commit, 20
clients asking for the same page cost one rendering, not 20 fighting over the GIL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from kiln.catalog.engine import normalize_url

ENTRIES = 512


class ReadCache:
    def __init__(self, url: str, entries: int = ENTRIES) -> None:
        parsed = normalize_url(url)
        self.entries = entries
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._revision: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._flights: dict[tuple[int, Hashable], _Flight] = {}
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._conn = sqlite3.connect(parsed.database, check_same_thread=False, isolation_level=None)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def revision(self) -> int | None:
        """The catalog's change counter now (None: not SQLite, no counter)."""
        if self._conn is None:
            return None
        with self._lock:
            revision: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
            return revision

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value of ``key`` if the catalog has not changed since it was made, else ``make()``
        (made once for concurrent callers; if it raises, each caller makes its own)."""
        if self._conn is None:
            return make()
        with self._lock:
            revision = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if revision != self._revision:
                self._values.clear()
                self._revision = revision
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            flight = self._flights.get((revision, key))
            leader = flight is None
            if flight is None:
                flight = self._flights[(revision, key)] = _Flight()
        if not leader:
            flight.done.wait()
            return flight.value if flight.made else make()
        try:
            value = flight.value = make()
            flight.made = True
        finally:
            with self._lock:
                del self._flights[(revision, key)]
            flight.done.set()
        with self._lock:
            if self._revision == revision:
                self._values[key] = value
                while len(self._values) > self.entries:
                    self._values.popitem(last=False)
        return value


class _Flight:
    """A value being made: callers of the same key wait for ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.made = False
        self.value: Any = None
