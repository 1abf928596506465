"""The delivery log: every event owed to a webhook, its attempts and outcome; manual redelivery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from kiln.catalog.models import DeliveryAttemptRow, DeliveryRow, EventRow, WebhookRow
from kiln.errors import KilnError, NotFound

if TYPE_CHECKING:
    from kiln.catalog import Catalog

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    webhook_id: int
    url: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt: datetime | None
    created: datetime
    finished: datetime | None
    last_status: int | None
    last_error: str | None
    redelivery_of: int | None
    log: list[Attempt] = []


def listing(
    catalog: Catalog,
    *,
    failed: bool = False,
    webhook_id: int | None = None,
    limit: int = 50,
    with_log: bool = False,
    delivery_id: int | None = None,
) -> list[Delivery]:
    """Newest first; ``failed``: only deliveries that ran out of attempts or whose last attempt failed."""
    query = (
        select(DeliveryRow, WebhookRow.url, EventRow.event_id, EventRow.type)
        .join(WebhookRow, WebhookRow.id == DeliveryRow.webhook_id)
        .join(EventRow, EventRow.id == DeliveryRow.event_row)
        .order_by(DeliveryRow.id.desc())
        .limit(limit)
    )
    if failed:
        query = query.where((DeliveryRow.status == FAILED) | (DeliveryRow.last_error.is_not(None)))
    if webhook_id is not None:
        query = query.where(DeliveryRow.webhook_id == webhook_id)
    if delivery_id is not None:
        query = query.where(DeliveryRow.id == delivery_id)
    with catalog.session() as s:
        rows = s.execute(query).all()
        logs: dict[int, list[Attempt]] = {}
        if with_log and rows:
            ids = [r[0].id for r in rows]
            for a in s.scalars(
                select(DeliveryAttemptRow)
                .where(DeliveryAttemptRow.delivery_id.in_(ids))
                .order_by(DeliveryAttemptRow.id)
            ):
                logs.setdefault(a.delivery_id, []).append(
                    Attempt(
                        number=a.number,
                        at=a.at,
                        duration_ms=a.duration_ms,
                        status_code=a.status_code,
                        error=a.error,
                    )
                )
        return [_delivery(d, url, event_id, type_, logs.get(d.id, [])) for d, url, event_id, type_ in rows]


def get(catalog: Catalog, delivery_id: int) -> Delivery:
    for d in listing(catalog, delivery_id=delivery_id, with_log=True):
        return d
    raise NotFound(f"no webhook delivery {delivery_id}", hint="see: kiln webhooks deliveries")


def redeliver(catalog: Catalog, delivery_id: int) -> int:
    """Queue the delivery's event to its webhook again (a new delivery, linked to the old); its id."""
    now = datetime.now(UTC)
    with catalog.session(write=True) as s, s.begin():
        old = s.get(DeliveryRow, delivery_id)
        if old is None:
            raise NotFound(f"no webhook delivery {delivery_id}", hint="see: kiln webhooks deliveries")
        if old.status == PENDING:
            raise KilnError(f"delivery {delivery_id} is still pending; the dispatcher retries it by itself")
        row = DeliveryRow(
            webhook_id=old.webhook_id,
            event_row=old.event_row,
            status=PENDING,
            attempts=0,
            next_attempt=now,
            created=now,
            redelivery_of=old.id,
        )
        s.add(row)
        s.flush()
        return row.id


def _delivery(d: DeliveryRow, url: str, event_id: str, type_: str, log: list[Attempt]) -> Delivery:
    return Delivery(
        id=d.id,
        webhook_id=d.webhook_id,
        url=url,
        event_id=event_id,
        event_type=type_,
        status=d.status,
        attempts=d.attempts,
        next_attempt=d.next_attempt,
        created=d.created,
        finished=d.finished,
        last_status=d.last_status,
        last_error=d.last_error,
        redelivery_of=d.redelivery_of,
        log=log,
    )
