"""Verified tokens, remembered briefly so a read does not open a catalog session per request.

A presented token is verified against the catalog (HMAC, revoked, expired) once, then trusted for at
most ``TTL`` seconds, and on SQLite only while the catalog is unchanged: revoking is a commit, which
moves ``PRAGMA data_version`` (:meth:`ReadCache.revision`), so on SQLite a revocation takes effect at
the next request; on other databases within ``TTL``. An entry never outlives the token's expiry.
Only safe methods use it (:func:`kiln.api.auth.principal_of`): a write always verifies against the
catalog. Refusals are not remembered. Entries are keyed by the token's HMAC, never the token itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kiln.access.tokens import Principal

TTL = 5.0
"""Seconds a verification is trusted (the revocation bound where the catalog has no change counter)."""
ENTRIES = 1024


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    expires: datetime | None
    revision: int | None
    stamp: float


class TokenCache:
    def __init__(
        self,
        revision: Callable[[], int | None],
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
        entries: int = ENTRIES,
    ) -> None:
        self.ttl = ttl
        self.entries = entries
        self._revision = revision
        self._clock = clock
        self._lock = threading.Lock()
        self._values: OrderedDict[str, _Entry] = OrderedDict()

    def principal(
        self, key: str, verify: Callable[[], tuple[Principal, datetime | None]], now: datetime | None = None
    ) -> Principal:
        """The principal remembered for ``key`` (a token's HMAC) if still trusted, else ``verify()``'s
        (which raises for a refused token; nothing is remembered then)."""
        revision = self._revision()
        with self._lock:
            entry = self._values.get(key)
            if entry is not None and self._fresh(entry, revision, now or datetime.now(UTC)):
                return entry.principal
        stamp = self._clock()
        principal, expires = verify()
        with self._lock:
            self._values[key] = _Entry(principal, expires, revision, stamp)
            self._values.move_to_end(key)
            while len(self._values) > self.entries:
                self._values.popitem(last=False)
        return principal

    def _fresh(self, entry: _Entry, revision: int | None, now: datetime) -> bool:
        return (
            entry.revision == revision
            and self._clock() - entry.stamp < self.ttl
            and (entry.expires is None or entry.expires > now)
        )
