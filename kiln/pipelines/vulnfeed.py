"""The daemon's scheduled vulnerability-database import (``kiln daemon --vulndb-source URL|PATH``).

Every ``--vulndb-every``, the feed is looked at and imported only when it changed: a URL is fetched
with ``If-None-Match`` / ``If-Modified-Since`` from the last answer (a 304 costs nothing), a file or
directory is re-read only when its size, mtime or inode changed, and a body whose digest is the one
already imported is not imported again. The validators and the time of the last check are kept in
``vulndb-feed.json`` in the data directory, so a restarted daemon does not import an unchanged feed
again, nor look before the interval is up. A download is bounded (per-read timeout, total time,
size) and goes to a scratch file; the import replaces the feed's rows in one SQLite transaction, so a
failure at any point leaves the previous database as it was. The daemon logs the failure and tries
again at the next interval.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog
from kiln.errors import KilnError
from kiln.events.cve import import_with_events
from kiln.evidence.feeds import FeedError, digest_of
from kiln.evidence.vulndb import SourceInfo, VulnDb
from kiln.monitor import ListMonitor
from kiln.store import Store

READ_TIMEOUT = 60.0  # seconds without a byte (or to connect) before a download is given up
TOTAL_SECONDS = 1800.0  # a whole download
MAX_BYTES = 1 << 30  # the Debian tracker's JSON is ~80 MB; an OSV zip of Debian ~30 MB
STATE_FILE = "vulndb-feed.json"
_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_every(text: str) -> timedelta:
    """``30m``, ``6h``, ``1d`` (at least a minute); a KilnError naming the value otherwise."""
    found = _EVERY.match(text)
    if found is None:
        raise KilnError(f"invalid interval {text!r}", hint="a number and a unit: 30m, 6h, 1d (or s)")
    every = timedelta(**{_UNITS[found[2]]: int(found[1])})
    if every < timedelta(minutes=1):
        raise KilnError(f"interval {text!r} is shorter than a minute")
    return every


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FeedCheck:
    """One look at the feed: ``imported`` is None when it had not changed (``detail`` says how
    that was known); ``events`` are the ``cve.found`` events of an import."""

    imported: SourceInfo | None
    detail: str
    events: int = 0


class VulnFeed:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        source: str,
        every: timedelta,
        *,
        kind: str | None = None,
        max_bytes: int = MAX_BYTES,
        read_timeout: float = READ_TIMEOUT,
        total_seconds: float = TOTAL_SECONDS,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.source = source if is_url(source) else str(Path(source).absolute())
        self.every = every
        self.kind = kind
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.total_seconds = total_seconds
        self.state_path = store.home / STATE_FILE
        state = self._state()
        checked = state.get("checked")
        self.next_check: datetime | None = (
            datetime.fromisoformat(checked) + every if isinstance(checked, str) else None
        )

    # --- state --------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """What the last check learnt about this source (nothing for another source or no file)."""
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("source") == self.source else {}

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps({**state, "source": self.source}, indent=2, sort_keys=True))
        os.replace(tmp, self.state_path)

    def _imported_digest(self) -> str | None:
        """The digest of this source's data in the database (None: not there, e.g. deleted)."""
        found = [s.digest for s in VulnDb.open(self.store).sources() if s.location == self.source]
        return found[0] if found else None

    # --- checking -----------------------------------------------------------------------------

    def due(self, now: datetime) -> bool:
        return self.next_check is None or now >= self.next_check

    def check(self, now: datetime) -> FeedCheck:
        """Look at the feed now and import it if it changed. Raises a KilnError (the database is then
        unchanged); either way the next look is due ``every`` from now."""
        state = self._state()
        self.next_check = now + self.every
        state["checked"] = now.isoformat()
        try:
            return self._check(state)
        finally:
            self._save(state)

    def _check(self, state: dict[str, Any]) -> FeedCheck:
        imported = self._imported_digest()
        if is_url(self.source):
            with self.store.scratch("vulndb-feed-") as scratch:
                fetched, validators = self._fetch(scratch / "feed", state if imported else {})
                if fetched is None:
                    return FeedCheck(None, "not modified (HTTP 304)")
                digest = digest_of(fetched)
                done = (
                    FeedCheck(None, f"unchanged ({digest[:19]}…)")
                    if digest == imported
                    else self._import(fetched, state, digest)
                )
                state.update(validators)  # only once the body is in the database
                return done
        path = Path(self.source)
        try:
            info = path.stat()
        except OSError as exc:
            raise FeedError(f"{path}: cannot read: {exc.strerror}") from exc
        stamp = [info.st_mtime_ns, info.st_size, info.st_ino]
        if imported and state.get("stat") == stamp and not path.is_dir():
            return FeedCheck(None, "unchanged (same size and modification time)")
        digest = digest_of(path)
        done = (
            FeedCheck(None, f"unchanged ({digest[:19]}…)")
            if digest == imported
            else self._import(None, state, digest)
        )
        state["stat"] = stamp
        return done

    def _import(self, fetched: Path | None, state: dict[str, Any], digest: str) -> FeedCheck:
        info, events = import_with_events(
            self.store, self.catalog, self.source, ListMonitor(), kind=self.kind, fetched=fetched
        )
        state["digest"] = digest
        return FeedCheck(info, f"imported {info.name}: {info.records} records, "
                               f"{info.vulnerabilities} vulnerabilities", len(events))  # fmt: skip

    def _fetch(self, target: Path, state: dict[str, Any]) -> tuple[Path | None, dict[str, str | None]]:
        """The URL's body in ``target`` (None on 304) and the answer's validators."""
        import httpx

        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
        url, limit = self.source, self.max_bytes
        deadline = time.monotonic() + self.total_seconds
        try:
            with httpx.stream("GET", url, headers=headers, timeout=self.read_timeout,
                              follow_redirects=True) as response:  # fmt: skip
                if response.status_code == 304:
                    return None, {}
                if response.status_code != 200:
                    raise FeedError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise FeedError(f"{url}: the feed is {int(length)} bytes, more than the {limit} allowed")
                size = 0
                with open(target, "wb") as fh:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise FeedError(f"{url}: the feed is more than the {limit} bytes allowed")
                        if time.monotonic() > deadline:
                            raise FeedError(f"{url}: the download took more than {self.total_seconds:.0f} s")
                        fh.write(chunk)
                validators = {"etag": response.headers.get("etag"),
                              "last_modified": response.headers.get("last-modified")}  # fmt: skip
        except httpx.HTTPError as exc:
            raise FeedError(f"cannot download {url}: {type(exc).__name__}: {exc}") from exc
        return target, validators
