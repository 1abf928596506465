"""Pruning the event log: events older than a number of days, with their finished deliveries.

``events`` is append-only and would grow by a few rows per build forever. ``kiln gc`` deletes what
is older than the cut-off, except events a webhook delivery still owes (status ``pending``): those
stay until delivered or out of attempts, so pruning never loses a notification. The delivery log
(deliveries and their attempts) of a pruned event goes with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from kiln.catalog import Catalog
from kiln.catalog.models import DeliveryAttemptRow, DeliveryRow, EventRow
from kiln.events.deliveries import PENDING

DEFAULT_DAYS = 90
_CHUNK = 500


def prune_events(catalog: Catalog, days: int, *, dry_run: bool = False, now: datetime | None = None) -> int:
    """Delete (``dry_run``: count) the events older than ``days`` that no pending delivery needs;
    returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    owed = select(DeliveryRow.event_row).where(DeliveryRow.status == PENDING)
    old = select(EventRow.id).where(EventRow.time < cutoff, EventRow.id.not_in(owed))
    with catalog.session(write=not dry_run) as s, s.begin():
        ids = list(s.scalars(old))
        if dry_run:
            return len(ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            deliveries = select(DeliveryRow.id).where(DeliveryRow.event_row.in_(chunk))
            s.execute(delete(DeliveryAttemptRow).where(DeliveryAttemptRow.delivery_id.in_(deliveries)))
            s.execute(delete(DeliveryRow).where(DeliveryRow.event_row.in_(chunk)))
            s.execute(delete(EventRow).where(EventRow.id.in_(chunk)))
    return len(ids)
