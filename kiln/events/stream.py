"""Reading the event table: a page after a cursor, and following it as new events are committed."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from kiln.catalog.models import EventRow
from kiln.errors import KilnError
from kiln.events.emit import to_event
from kiln.events.model import Event, type_matches

if TYPE_CHECKING:
    from kiln.catalog import Catalog

RELATIVE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
POLL_SECONDS = 1.0
PAGE = 500


class BadSince(KilnError):
    exit_code = 2


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``/``2h``/``7d`` ago, or an ISO 8601 time (UTC when it has no zone)."""
    match = RELATIVE.match(text.strip())
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadSince(f"--since {text!r}: not a duration (30m, 2h, 7d) or an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def scan(
    catalog: Catalog, *, after: int = 0, types: list[str] | None = None, limit: int = PAGE
) -> tuple[list[tuple[int, Event]], int]:
    """Up to ``limit`` events after the cursor ``after`` (those matching ``types``) and the cursor to
    poll from next (past the events the globs left out)."""
    query = select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
    with catalog.session() as s:
        rows = s.scalars(query).all()
        found = [(r.id, to_event(r)) for r in rows if type_matches(r.type, types or [])]
    return found, rows[-1].id if rows else after


def page(
    catalog: Catalog,
    *,
    after: int = 0,
    since: datetime | None = None,
    types: list[str] | None = None,
    limit: int = PAGE,
) -> list[tuple[int, Event]]:
    """Events with a cursor id above ``after`` (and at or after ``since``), oldest first, with their ids.

    Type globs are applied here, after the indexed cursor query: the cursor still advances past the
    events they leave out (see :func:`follow`)."""
    query = select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(limit)
    if since is not None:
        query = query.where(EventRow.time >= since)
    with catalog.session() as s:
        rows = s.scalars(query).all()
        return [(r.id, to_event(r)) for r in rows if type_matches(r.type, types or [])]


def last_id(catalog: Catalog) -> int:
    with catalog.session() as s:
        return s.scalar(select(EventRow.id).order_by(EventRow.id.desc()).limit(1)) or 0


def follow(
    catalog: Catalog,
    *,
    after: int = 0,
    since: datetime | None = None,
    types: list[str] | None = None,
    stop: threading.Event | None = None,
    poll: float = POLL_SECONDS,
) -> Iterator[tuple[int, Event]]:
    """Every matching event after ``after``, then each new one as it is committed (one indexed query
    per ``poll`` seconds while idle), until ``stop`` is set."""
    stop = stop or threading.Event()
    cursor = after
    while not stop.is_set():
        with catalog.session() as s:
            query = select(EventRow).where(EventRow.id > cursor).order_by(EventRow.id).limit(PAGE)
            if since is not None:
                query = query.where(EventRow.time >= since)
            rows = s.scalars(query).all()
            batch = [(r.id, to_event(r)) for r in rows]
        for row_id, event in batch:
            cursor = row_id
            if type_matches(event.type, types or []):
                yield row_id, event
        if len(batch) < PAGE:
            stop.wait(poll)


def recent(
    catalog: Catalog, *, since: datetime | None = None, types: list[str] | None = None, limit: int = 50
) -> list[tuple[int, Event]]:
    """The newest ``limit`` matching events (at or after ``since``), oldest first."""
    found: list[tuple[int, Event]] = []
    before: int | None = None
    while len(found) < limit:
        query = select(EventRow).order_by(EventRow.id.desc()).limit(PAGE)
        if before is not None:
            query = query.where(EventRow.id < before)
        if since is not None:
            query = query.where(EventRow.time >= since)
        with catalog.session() as s:
            rows = s.scalars(query).all()
            batch = [(r.id, to_event(r)) for r in rows]
        found += [(i, e) for i, e in batch if type_matches(e.type, types or [])]
        if len(batch) < PAGE:
            break
        before = batch[-1][0]
    return sorted(found[:limit], key=lambda item: item[0])
