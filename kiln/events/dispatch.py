"""The webhook dispatcher: sends pending deliveries, retries failures with bounded exponential
back-off, and logs every attempt. ``kiln webhooks dispatch`` runs it alone; ``kiln serve`` and the
daemon host it in a thread (:func:`start`).

A delivery is claimed before it is sent (its next attempt moved past the send's time-out in one
UPDATE), so two dispatchers never send it at once; a dispatcher killed mid-send leaves it to be
retried when the claim lapses (delivery is at least once: receivers dedupe on ``webhook-id``).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from kiln.catalog.models import DeliveryAttemptRow, DeliveryRow, EventRow, WebhookRow
from kiln.errors import KilnError
from kiln.events.deliveries import DELIVERED, FAILED, PENDING
from kiln.events.emit import to_event
from kiln.events.model import CONTENT_TYPE
from kiln.events.signing import headers
from kiln.events.targets import check_url
from kiln.events.webhooks import SecretRef

if TYPE_CHECKING:
    from kiln.catalog import Catalog
    from kiln.settings import Settings

Clock = Callable[[], datetime]
Sender = Callable[[str, bytes, dict[str, str], float], int]
"""(url, body, headers, timeout) -> HTTP status; raises OSError when no response came."""
USER_AGENT = "kiln-webhooks/1"
MAX_ERROR = 500


class RetryPolicy(BaseModel):
    """Attempt n (1-based) failing waits ``min(base * 2**(n-1), max_delay)`` before the next one;
    after ``max_attempts`` the delivery is failed (``kiln webhooks redeliver`` starts it over)."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=8, ge=1, le=50)
    base_delay: float = Field(default=10.0, gt=0)
    max_delay: float = Field(default=3600.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)

    def delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.base_delay * 2 ** (attempt - 1), self.max_delay))


def utcnow() -> datetime:
    return datetime.now(UTC)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is a failed attempt: following it could lead anywhere (SSRF)


_OPENER = urllib.request.build_opener(_NoRedirects)


def http_send(url: str, body: bytes, hdrs: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=hdrs, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


class Dispatcher:
    def __init__(
        self,
        catalog: Catalog,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = utcnow,
        sender: Sender = http_send,
    ) -> None:
        self.catalog = catalog
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.sender = sender

    def run_once(self, limit: int = 100) -> int:
        """Attempt every delivery due now; returns how many were attempted."""
        now = self.clock()
        with self.catalog.session() as s:
            due = s.scalars(
                select(DeliveryRow.id)
                .where(DeliveryRow.status == PENDING, DeliveryRow.next_attempt <= now)
                .order_by(DeliveryRow.next_attempt, DeliveryRow.id)
                .limit(limit)
            ).all()
        attempted = 0
        for delivery_id in due:
            if self._claim(delivery_id, now):
                self._attempt(delivery_id)
                attempted += 1
        return attempted

    def next_due(self) -> datetime | None:
        with self.catalog.session() as s:
            return s.scalar(select(func.min(DeliveryRow.next_attempt)).where(DeliveryRow.status == PENDING))

    def run(self, stop: threading.Event, poll: float = 2.0) -> None:
        """Until ``stop`` is set: deliver what is due, then wait for the next due time (at most ``poll``
        seconds, so new events are picked up) without spinning."""
        while not stop.is_set():
            try:
                if self.run_once():
                    continue
                due = self.next_due()
            except SQLAlchemyError:  # the database went away for a moment: try again after a pause
                due = None
            wait = poll if due is None else (due - self.clock()).total_seconds()
            stop.wait(min(max(wait, 0.05), poll))

    def _claim(self, delivery_id: int, now: datetime) -> bool:
        lease = now + timedelta(seconds=self.policy.timeout + 30)
        with self.catalog.session(write=True) as s, s.begin():
            claimed = s.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id == delivery_id,
                    DeliveryRow.status == PENDING,
                    DeliveryRow.next_attempt <= now,
                )
                .values(next_attempt=lease)
            )
            return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def _attempt(self, delivery_id: int) -> None:
        with self.catalog.session() as s:
            delivery = s.get(DeliveryRow, delivery_id)
            assert delivery is not None
            hook = s.get(WebhookRow, delivery.webhook_id)
            event_row = s.get(EventRow, delivery.event_row)
            if hook is None or event_row is None:
                return  # deleted meanwhile (the delivery went with it)
            event = to_event(event_row)
            url, ref, allow_private = hook.url, SecretRef.parse(hook.secret_ref), hook.allow_private
        body = event.body()
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            check_url(url, allow_private=allow_private)
            signed = headers(ref.key(), event.id, int(self.clock().timestamp()), body)
            hdrs = {"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT, **signed}
            status = self.sender(url, body, hdrs, self.policy.timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except KilnError as exc:
            error = exc.message
        except (OSError, ValueError, http.client.HTTPException) as exc:  # no answer, or not HTTP
            error = f"{type(exc).__name__}: {exc}"
        self._record(delivery_id, status, error, int((time.monotonic() - started) * 1000))

    def _record(self, delivery_id: int, status: int | None, error: str | None, duration_ms: int) -> None:
        now = self.clock()
        with self.catalog.session(write=True) as s, s.begin():
            d = s.get(DeliveryRow, delivery_id)
            if d is None:
                return
            d.attempts += 1
            s.add(
                DeliveryAttemptRow(
                    delivery_id=d.id,
                    number=d.attempts,
                    at=now,
                    duration_ms=duration_ms,
                    status_code=status,
                    error=error and error[:MAX_ERROR],
                )
            )
            d.last_status, d.last_error = status, error and error[:MAX_ERROR]
            if error is None:
                d.status, d.next_attempt, d.finished = DELIVERED, None, now
            elif d.attempts >= self.policy.max_attempts:
                d.status, d.next_attempt, d.finished = FAILED, None, now
            else:
                d.next_attempt = now + self.policy.delay(d.attempts)


def start(catalog: Catalog, stop: threading.Event, *, policy: RetryPolicy | None = None) -> threading.Thread:
    """Run a dispatcher in a daemon thread until ``stop`` is set (for ``kiln serve`` and the daemon)."""
    dispatcher = Dispatcher(catalog, policy=policy)
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="kiln-webhooks", daemon=True)
    thread.start()
    return thread


@contextmanager
def hosted(data_dir: Path, settings: Settings) -> Iterator[None]:
    """A dispatcher thread over ``data_dir``'s catalog for the duration of the block (``kiln serve``)."""
    from kiln.catalog import Catalog
    from kiln.store import Store

    stop = threading.Event()
    with Catalog.open(Store.open(data_dir, settings).database_url) as catalog:
        thread = start(catalog, stop)
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
