"""``/builds``: build records, their logs (JSON lines, or live as Server-Sent Events)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from kiln.api.auth import BuildsReader, BuildsWriter
from kiln.api.deps import BuildId, CatalogDep, ConfigDep, ExecutorDep, StoreDep
from kiln.api.logs import follow, log_file, read_records, resume_point
from kiln.api.problems import ApiError
from kiln.api.schemas import Page, page_of
from kiln.api.submit import BuildSubmission, build_request, without_folder
from kiln.catalog import BuildRecord
from kiln.executors.local import JobFailed, Submitted

router = APIRouter(prefix="/builds", tags=["builds"])

MAX_LISTED = 5000
REAP_EVERY = 20  # log polls (about 5 s) between checks for builds whose process died
SSE_EVENT = {
    "type": "object",
    "description": "one event: 'record' (data: a log record as JSON, id: resume offset, 'ATTEMPT.offset' "
    "from a retried build's attempt 2 on), 'attempt' (a retry started: the new attempt's log follows from "
    'its start; data: {"attempt": N}) or \'end\' (data: {"status": ...})',
    "properties": {
        "event": {"enum": ["record", "attempt", "end"]},
        "data": {"type": "string"},
        "id": {"type": "string"},
    },
}


@router.get("", summary="Recent builds, newest first")
def list_builds(
    _: BuildsReader,
    catalog: CatalogDep,
    status: Annotated[str | None, Query(pattern="^(running|succeeded|failed)$")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[BuildRecord]:
    builds = [b for b in catalog.list_builds(MAX_LISTED) if status is None or b.status == status]
    return page_of(builds, cursor, limit)


@router.get("/{build_id}", summary="One build")
def show_build(_: BuildsReader, catalog: CatalogDep, build_id: BuildId) -> BuildRecord:
    return catalog.get_build(build_id)


@router.get(
    "/{build_id}/log",
    summary="The build's event log: JSON lines, or with follow=true Server-Sent Events until it ends",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                 "text/event-stream": {"schema": SSE_EVENT}}}},
)  # fmt: skip
def build_log(
    _: BuildsReader,
    catalog: CatalogDep,
    store: StoreDep,
    build_id: BuildId,
    follow_log: Annotated[bool, Query(alias="follow")] = False,
    attempt: Annotated[
        int | None,
        Query(
            ge=1, le=999, description="A retried queued build's earlier attempt (default: the current one)"
        ),
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    from kiln.shippedlogs import current_attempt

    build = catalog.get_build(build_id)
    current = current_attempt(catalog, build.id)
    if attempt is not None and attempt != current:
        if follow_log:
            raise ApiError(422, "attempt goes without follow=true (a follower follows the current attempt)")
        path = earlier_attempt_log(catalog, store, build, attempt)
    else:
        path = log_file(store, build, current)
    if not follow_log:
        records, _end = read_records(path)
        body = "".join(text + "\n" for _offset, text in records)
        return Response(body, media_type="application/x-ndjson")

    polls = 0
    mirrored = not path.is_relative_to((store.home / "logs").resolve())
    ended: list[float] = []

    def status() -> str:
        nonlocal polls
        polls += 1
        if polls % REAP_EVERY == 0:  # a worker killed with SIGKILL cannot record its end: notice it
            catalog.reap_interrupted()
        current = catalog.get_build(build.id)
        if mirrored and current.status not in ("queued", "running"):
            from kiln.shippedlogs import END_WAIT, shipped_in_full

            ended.append(time.monotonic())  # wait (a while) for the worker's last ship
            attempt = current_attempt(catalog, build.id)
            if not shipped_in_full(store, current, attempt) and ended[-1] - ended[0] < END_WAIT:
                return "running"
        return current.status

    def source() -> tuple[int, Path]:
        """The current attempt and its log (a build on another machine: what its worker shipped since,
        of the attempt the catalog says runs now, so a retry is followed from its claim)."""
        if not mirrored:
            return 1, path
        attempt = current_attempt(catalog, build.id)
        return attempt or 1, log_file(store, catalog.get_build(build.id), attempt)

    return StreamingResponse(
        follow(source, status, resume_point(last_event_id)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def earlier_attempt_log(catalog: CatalogDep, store: StoreDep, build: BuildRecord, attempt: int) -> Path:
    """What attempt ``attempt`` of ``build`` shipped to the shared store, mirrored here."""
    from kiln.catalog.queue import attempts
    from kiln.readthrough import shared_store
    from kiln.shippedlogs import mirror_attempt

    if attempt not in [a["attempt"] for a in attempts(catalog, build.id)]:
        raise ApiError(404, f"build {build.id} has no attempt {attempt}")
    shared = shared_store(store)
    if shared is None:
        raise ApiError(404, f"the log of attempt {attempt} of build {build.id} is only in the shared store, "
                            "which this server does not use (KILN_STORE_URL)")  # fmt: skip
    return mirror_attempt(store, shared, build.id, attempt)


class Cancelled(BaseModel):
    build_id: str
    cancelled: bool


@router.post("", status_code=202, summary="Start a build in a worker process; returns once it is recorded")
def submit_build(
    who: BuildsWriter,
    request: Request,
    submission: BuildSubmission,
    catalog: CatalogDep,
    store: StoreDep,
    config: ConfigDep,
    executor: ExecutorDep,
) -> Submitted:
    build = build_request(submission, catalog, store, who, config.settings.source_date_epoch)
    try:
        submitted = executor.submit(build, wait=config.submit_timeout)
    except JobFailed as exc:
        raise without_folder(exc, build.recipe.path.parent) from None
    request.state.audit_target = submitted.build_id
    return submitted


@router.post("/{build_id}/cancel", status_code=202, summary="Cancel a running build started through the API")
def cancel_build(
    _: BuildsWriter, request: Request, catalog: CatalogDep, executor: ExecutorDep, build_id: BuildId
) -> Cancelled:
    build = catalog.get_build(build_id)
    request.state.audit_target = build.id
    if build.status not in ("queued", "running"):
        raise ApiError(
            409, f"build {build.id} is {build.status}; only a queued or running build can be cancelled"
        )
    if not executor.cancel(build.id):
        raise ApiError(409, f"build {build.id} was not started by this server; stop it where it runs")
    return Cancelled(build_id=build.id, cancelled=True)
