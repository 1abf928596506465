"""The event table as Server-Sent Events: each event the caller may see as one ``id:``/``data:`` frame
(the id is the polling form's cursor, so ``Last-Event-ID`` resumes), a keep-alive comment while idle,
and a cap on concurrent streams per token so idle clients cannot hold a server's threads and sockets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from kiln.api.problems import ApiError
from kiln.catalog import Catalog
from kiln.events.model import Event
from kiln.events.stream import scan

POLL_SECONDS = 1.0  # one indexed query (id > cursor) per second while idle, as kiln events --follow
KEEPALIVE_SECONDS = 15.0  # a comment line when nothing was sent for this long (proxies drop idle streams)
MAX_STREAMS_PER_TOKEN = 5
_CREATE = threading.Lock()


@dataclass
class StreamSlots:
    """Open event streams per holder (a token id, or an anonymous caller's address), per server process."""

    limit: int = MAX_STREAMS_PER_TOKEN
    poll: float = POLL_SECONDS
    keepalive: float = KEEPALIVE_SECONDS
    max_seconds: float | None = None  # end each stream after this long (clients resume with Last-Event-ID)
    active: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, holder: str) -> Callable[[], None]:
        """A slot for ``holder`` (429 when it has ``limit`` open), and the function that gives it back."""
        with self.lock:
            if self.active.get(holder, 0) >= self.limit:
                raise ApiError(429, f"{self.limit} event streams are open for this token already",
                               hint="close one, or poll GET /api/v1/events?after=CURSOR")  # fmt: skip
            self.active[holder] = self.active.get(holder, 0) + 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            with self.lock:
                left = self.active.get(holder, 1) - 1
                if left > 0:
                    self.active[holder] = left
                else:
                    self.active.pop(holder, None)

        return release


def slots_of(app: FastAPI) -> StreamSlots:
    """The app's stream slots (made on first use; tests may tune them before the first stream)."""
    with _CREATE:
        slots: StreamSlots | None = getattr(app.state, "event_streams", None)
        if slots is None:
            slots = app.state.event_streams = StreamSlots()
        return slots


class EventStreamResponse(StreamingResponse):
    """Gives the stream's slot back however the response ends: finished, failed or the client gone."""

    def __init__(self, frames: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(frames, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def frame(cursor: int, event: Event) -> str:
    return f"id: {cursor}\ndata: {json.dumps(event.envelope(), sort_keys=True)}\n\n"


async def frames(
    request: Request,
    catalog: Catalog,
    slots: StreamSlots,
    *,
    after: int,
    types: list[str] | None,
    shown: Callable[[Event], bool],
) -> AsyncIterator[str]:
    """Frames for the events after ``after`` that match ``types`` and ``shown``, until the client goes
    away (noticed within one poll) or ``slots.max_seconds`` pass."""
    cursor = after
    started = last_sent = time.monotonic()
    yield "retry: 3000\n\n"  # headers and a first byte at once; EventSource reconnects after 3 s
    while True:
        found, moved = await anyio.to_thread.run_sync(partial(scan, catalog, after=cursor, types=types))
        for row_id, event in found:
            if shown(event):
                yield frame(row_id, event)
                last_sent = time.monotonic()
        now = time.monotonic()
        if now - last_sent >= slots.keepalive:
            yield ": keep-alive\n\n"
            last_sent = now
        if slots.max_seconds is not None and now - started >= slots.max_seconds:
            return
        if await request.is_disconnected():
            return
        if moved == cursor:
            await anyio.sleep(slots.poll)
        cursor = moved
