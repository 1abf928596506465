"""Build logs over HTTP: the JSON-lines file as it is, or followed live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from kiln.api.problems import ApiError
from kiln.catalog import BuildRecord
from kiln.store import Store

POLL_SECONDS = 0.25
MAX_LINE = 1 << 20


def log_file(store: Store, build: BuildRecord, attempt: int | None = None) -> Path:
    """The build's log, refused unless it is in the data directory's log folder (or, for a build
    on another machine, the mirror of what its ``attempt`` shipped: kiln.shippedlogs)."""
    from kiln.shippedlogs import log_file as local_or_mirror

    path = local_or_mirror(store, build, attempt)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ApiError(404, f"build {build.id} has no log (yet)") from None
    folders = [(store.home / "logs").resolve(), (store.home / "remote" / "logs").resolve()]
    if not any(real.is_relative_to(f) for f in folders) or not real.is_file():
        raise ApiError(404, f"build {build.id}'s log is outside the data directory's log folder")
    return real


def read_records(path: Path, start: int = 0) -> tuple[list[tuple[int, str]], int]:
    """Complete JSON-object lines from byte offset ``start``: ([(line end offset, text)], new offset)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    out: list[tuple[int, str]] = []
    offset = start
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n") and len(raw) < MAX_LINE:
            break  # a line still being written
        offset += len(raw)
        text = raw.decode("utf-8", "replace").strip()
        if text.startswith("{"):
            try:
                json.loads(text)
            except json.JSONDecodeError:
                continue
            out.append((offset, text))
    return out, offset


def event_id(attempt: int, offset: int) -> str:
    """An SSE id: the byte offset after the record, prefixed ``ATTEMPT.`` from a retry's attempt 2 on
    (attempt 1's ids stay plain offsets)."""
    return str(offset) if attempt == 1 else f"{attempt}.{offset}"


def resume_point(last_event_id: str | None) -> tuple[int, int]:
    """(attempt, offset) to resume after a client's ``Last-Event-ID``; the start without one."""
    found = re.fullmatch(r"(?:(\d{1,6})\.)?(\d{1,13})", last_event_id or "")
    if found is None:
        return 1, 0
    return int(found.group(1) or 1), int(found.group(2))


async def follow(
    source: Callable[[], tuple[int, Path]], status: Callable[[], str], resume: tuple[int, int] = (1, 0)
) -> AsyncIterator[str]:
    """SSE frames for each record after ``resume`` (see :func:`event_id`: a client resumes with
    Last-Event-ID), until the build is no longer running; then an ``end`` event. ``source`` returns the
    build's current attempt (1 unless it was retried) and its log, brought up to date (a mirrored log
    is fetched again). When a retry starts, an ``attempt`` event (data: ``{"attempt": N}``) says so and
    the new attempt's log follows from its start; a stream that starts on attempt 2 or later opens with
    that event too."""
    shown, offset = resume
    announced = False
    while True:
        state = await asyncio.to_thread(status)
        attempt, path = await asyncio.to_thread(source)
        if attempt != shown or (attempt > 1 and not announced):
            offset = offset if attempt == shown else 0
            shown, announced = attempt, True
            yield f"event: attempt\ndata: {json.dumps({'attempt': attempt})}\n\n"
        records: list[tuple[int, str]] = []
        if path.is_file():
            records, offset = await asyncio.to_thread(read_records, path, offset)
        for end, text in records:
            yield f"id: {event_id(attempt, end)}\nevent: record\ndata: {text}\n\n"
        if state not in ("queued", "running") and not records:
            yield f"event: end\ndata: {json.dumps({'status': state})}\n\n"
            return
        if not records:
            yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
