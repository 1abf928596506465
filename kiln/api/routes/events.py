"""``/events``: the event stream (kiln.events), polled with a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from kiln.api.auth import BuildsReader, caller
from kiln.api.deps import CatalogDep
from kiln.events.model import Event
from kiln.events.stream import scan

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


@router.get("", summary="Events after the cursor `after` (0: from the first), oldest first")
def list_events(
    _: BuildsReader,
    request: Request,
    catalog: CatalogDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    types: Annotated[
        list[Annotated[str, Query(pattern=r"^[a-z0-9*?.\[\]-]{1,128}$")]] | None,
        Query(
            alias="type", max_length=20, description="event type globs, e.g. build.* or dev.kiln.cve.found"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    who = caller(request)
    found, cursor = scan(catalog, after=after, types=types, limit=limit)
    if who.images is not None:  # a token limited to some images sees only their events
        found = [(i, e) for i, e in found if (name := image_name(e)) is not None and who.sees(name)]
    return EventPage(items=[e for _, e in found], next_after=cursor)
