"""``/events``: the event stream (kiln.events), polled with a cursor or followed as Server-Sent Events
(``/events/stream``)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel

from kiln.access.tokens import Principal
from kiln.api.auth import BuildsReader, caller
from kiln.api.deps import CatalogDep
from kiln.api.eventstream import EventStreamResponse, frames, slots_of
from kiln.api.problems import MEDIA_TYPE, Problem
from kiln.events.model import Event
from kiln.events.stream import last_id, scan

router = APIRouter(prefix="/events", tags=["events"])


class EventPage(BaseModel):
    """CloudEvents 1.0 events, oldest first; poll again with ``after=next_after``."""

    items: list[Event]
    next_after: int


def image_name(event: Event) -> str | None:
    """The image (or recipe) an event is about, for tokens restricted to some image names."""
    data = event.data
    name = data.get("name") or data.get("recipe") or str(data.get("image") or "").partition("@")[0]
    return str(name) if name else None


def shown_to(who: Principal, event: Event) -> bool:
    """A token limited to some images sees only their events (the polling and streaming forms alike)."""
    return who.images is None or ((name := image_name(event)) is not None and who.sees(name))


Types = Annotated[
    list[Annotated[str, Query(pattern=r"^[a-z0-9*?.\[\]-]{1,128}$")]] | None,
    Query(alias="type", max_length=20, description="event type globs, e.g. build.* or dev.kiln.cve.found"),
]


@router.get("", summary="Events after the cursor `after` (0: from the first), oldest first")
def list_events(
    _: BuildsReader,
    request: Request,
    catalog: CatalogDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    types: Types = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    who = caller(request)
    found, cursor = scan(catalog, after=after, types=types, limit=limit)
    return EventPage(items=[e for _, e in found if shown_to(who, e)], next_after=cursor)


SSE_FRAME = {
    "type": "object",
    "description": "one frame per event: id (the cursor; send it back as Last-Event-ID to resume) and "
    "data (the CloudEvents JSON object); ': keep-alive' comment lines while idle",
    "properties": {"id": {"type": "string"}, "data": {"type": "string"}},
}


@router.get(
    "/stream",
    summary="Events as Server-Sent Events, as they are committed",
    description="Starts after `after` (absent: only events committed from now on), or after the "
    "`Last-Event-ID` header when a client reconnects. Type globs and the token's image patterns filter as "
    "in GET /events. At most 5 streams per token at once (429 beyond); a keep-alive comment every 15 s.",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_FRAME}}},
               429: {"model": Problem, "content": {MEDIA_TYPE: {}},
                     "description": "too many open streams for this token"}},
)  # fmt: skip
async def stream_events(
    who: BuildsReader,
    request: Request,
    catalog: CatalogDep,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    types: Types = None,
    last_event_id: Annotated[str, Header(pattern=r"^[0-9]{0,18}$")] = "",
) -> Response:
    if last_event_id:
        start = int(last_event_id)
    elif after is not None:
        start = after
    else:
        start = await anyio.to_thread.run_sync(last_id, catalog)
    slots = slots_of(request.app)
    client = request.client.host if request.client else "-"
    release = slots.take(who.token_id or f"anonymous {client}")
    body = frames(request, catalog, slots, after=start, types=types, shown=lambda e: shown_to(who, e))
    return EventStreamResponse(body, release)
