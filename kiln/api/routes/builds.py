"""``/builds``: build records, their logs (JSON lines, or live as Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from kiln.api.deps import BuildId, CatalogDep, StoreDep
from kiln.api.logs import follow, log_file, read_records
from kiln.api.schemas import Page, page_of
from kiln.catalog import BuildRecord

router = APIRouter(prefix="/builds", tags=["builds"])

MAX_LISTED = 5000


@router.get("", summary="Recent builds, newest first")
def list_builds(
    catalog: CatalogDep,
    status: Annotated[str | None, Query(pattern="^(running|succeeded|failed)$")] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[BuildRecord]:
    builds = [b for b in catalog.list_builds(MAX_LISTED) if status is None or b.status == status]
    return page_of(builds, cursor, limit)


@router.get("/{build_id}", summary="One build")
def show_build(catalog: CatalogDep, build_id: BuildId) -> BuildRecord:
    return catalog.get_build(build_id)


@router.get(
    "/{build_id}/log",
    summary="The build's event log: JSON lines, or with follow=true Server-Sent Events until it ends",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                 "text/event-stream": {"schema": {"type": "string"}}}}},
)  # fmt: skip
def build_log(
    request: Request,
    catalog: CatalogDep,
    store: StoreDep,
    build_id: BuildId,
    follow_log: Annotated[bool, Query(alias="follow")] = False,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    build = catalog.get_build(build_id)
    path = log_file(store, build)
    if not follow_log:
        records, _ = read_records(path)
        body = "".join(text + "\n" for _, text in records)
        return Response(body, media_type="application/x-ndjson")
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0

    def status() -> str:
        return catalog.get_build(build.id).status

    return StreamingResponse(
        follow(path, status, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
