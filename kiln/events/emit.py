"""Record an event: one row in ``events`` plus one pending delivery per webhook that wants it.

Given a session, both are written in the caller's transaction, so an event exists if and only if the
state change it reports was committed (a rolled-back build leaves no ``build.succeeded`` behind).
Given a catalog, they are written in a transaction of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog.models import DeliveryRow, EventRow, WebhookRow
from kiln.events.model import Event, type_matches

if TYPE_CHECKING:
    from kiln.catalog import Catalog


def emit(target: Session | Catalog, event: Event) -> int:
    """Record ``event`` (in ``target``'s open transaction if it is a session); returns its cursor id."""
    if isinstance(target, Session):
        return _write(target, event)
    with target.session(write=True) as s, s.begin():
        return _write(s, event)


def wants(hook: WebhookRow, event: Event) -> bool:
    """A webhook wants an event of a type it lists (all when none) and, when it is bound to a
    pipeline, only that pipeline's events."""
    if not hook.enabled or not type_matches(event.type, hook.types):
        return False
    return hook.pipeline is None or hook.pipeline == event.pipeline


def _write(s: Session, event: Event) -> int:
    row = EventRow(
        event_id=event.id,
        type=event.type,
        source=event.source,
        subject=event.subject,
        pipeline=event.pipeline,
        time=event.time,
        data=event.data,
    )
    s.add(row)
    s.flush()
    now = datetime.now(UTC)
    for hook in s.scalars(select(WebhookRow).where(WebhookRow.enabled)):
        if wants(hook, event):
            s.add(
                DeliveryRow(
                    webhook_id=hook.id,
                    event_row=row.id,
                    status="pending",
                    attempts=0,
                    next_attempt=now,
                    created=now,
                )
            )
    return row.id


def to_event(row: EventRow) -> Event:
    """The event a row holds, exactly as emitted."""
    return Event(
        id=row.event_id,
        type=row.type,
        source=row.source,
        subject=row.subject,
        pipeline=row.pipeline,
        time=row.time,
        data=row.data,
    )
