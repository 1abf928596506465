"""Build logs over HTTP: the JSON-lines file as it is, or followed live as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from kiln.api.problems import ApiError
from kiln.catalog import BuildRecord
from kiln.store import Store

POLL_SECONDS = 0.25
MAX_LINE = 1 << 20


def log_file(store: Store, build: BuildRecord) -> Path:
    """The build's log, refused unless it is in the data directory's log folder (or, for a build
    on another machine, the mirror of its shipped log: kiln.shippedlogs)."""
    from kiln.shippedlogs import log_file as local_or_mirror

    path = local_or_mirror(store, build)
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


async def follow(path: Path, status: Callable[[], str], start: int = 0,
                 refresh: Callable[[], object] | None = None) -> AsyncIterator[str]:  # fmt: skip
    """SSE frames for each record from ``start`` (``id`` is the byte offset after the record, so a
    client resumes with Last-Event-ID), until the build is no longer running; then an ``end`` event.
    ``refresh`` brings a mirrored log up to date before each read."""
    offset = start
    while True:
        state = await asyncio.to_thread(status)
        if refresh is not None:
            await asyncio.to_thread(refresh)
        records, offset = await asyncio.to_thread(read_records, path, offset)
        for end, text in records:
            yield f"id: {end}\nevent: record\ndata: {text}\n\n"
        if state not in ("queued", "running") and not records:
            yield f"event: end\ndata: {json.dumps({'status': state})}\n\n"
            return
        if not records:
            yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)
