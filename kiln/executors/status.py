"""What the queue looks like: live workers (host, capabilities, current build, last heartbeat) and
jobs per queue, for ``kiln status``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from kiln.capabilities import Capabilities
from kiln.catalog import Catalog
from kiln.catalog import queue as jobs


class WorkerStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    host: str
    pid: int
    queue: str
    capabilities: list[str]
    concurrency: int
    current_build: str | None
    last_seen: datetime


class QueueStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    todo: int
    doing: int


class Status(BaseModel):
    model_config = ConfigDict(frozen=True)

    workers: list[WorkerStatus]
    queues: list[QueueStatus]


def queue_status(url: str) -> Status:
    from kiln.executors.queue import make_app

    with Catalog.open(url) as catalog:
        running = jobs.current_builds(catalog)
        workers = [
            WorkerStatus(
                id=w.id,
                host=w.host,
                pid=w.pid,
                queue=w.queue,
                capabilities=Capabilities.model_validate(w.capabilities).tokens(),
                concurrency=w.concurrency,
                current_build=running.get(w.id),
                last_seen=w.last_seen,
            )
            for w in sorted(jobs.live_workers(catalog), key=lambda w: (w.host, w.started))
        ]
    app = make_app(url, asynchronous=False)
    with app.open():
        rows: list[dict[str, Any]] = list(app.job_manager.list_queues())
    queues = [QueueStatus(name=r["name"], todo=r["todo"], doing=r["doing"]) for r in rows]
    return Status(workers=workers, queues=sorted(queues, key=lambda q: q.name))
