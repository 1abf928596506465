"""The catalog's side of queued builds: registration, claims (attempts), workers and waiting reasons.

Every function is one transaction. The job itself lives in Procrastinate's tables
(kiln.executors.queue); these rows are what Kiln shows and fences with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kiln.capabilities import Capabilities, waiting_reason
from kiln.catalog.catalog import Catalog, utcnow
from kiln.catalog.models import BuildAttemptRow, BuildJobRow, BuildRow, WorkerRow
from kiln.catalog.refs import hostname

LIVE_AFTER = timedelta(seconds=90)  # a worker not seen for this long is not counted as available


def add_queued(
    s: Session,
    *,
    build_id: str,
    recipe_name: str,
    recipe_version: str,
    recipe_path: str,
    queue: str,
    needs: Capabilities,
    max_attempts: int,
    queueing_lock: str | None,
) -> None:
    """The build row (``queued``) and its job row, in the caller's transaction."""
    now = utcnow()
    s.add(
        BuildRow(
            id=build_id,
            recipe_name=recipe_name,
            recipe_version=recipe_version,
            recipe_path=recipe_path,
            status="queued",
            started=now,
            log_path="",
            host="",
            pid=0,
        )
    )
    s.flush()  # the build row first: no ORM relationship orders the two inserts
    s.add(
        BuildJobRow(
            build_id=build_id,
            queue=queue,
            requirements=needs.model_dump(),
            attempt=0,
            max_attempts=max_attempts,
            submitted=now,
            queueing_lock=queueing_lock,
        )
    )
    s.flush()


def queued_with_lock(catalog: Catalog, queueing_lock: str) -> str | None:
    """The waiting build deferred with ``queueing_lock`` (an identical request), if any."""
    with catalog.session() as s:
        return s.scalar(
            select(BuildJobRow.build_id)
            .join(BuildRow, BuildRow.id == BuildJobRow.build_id)
            .where(BuildJobRow.queueing_lock == queueing_lock, BuildRow.status == "queued")
            .limit(1)
        )


def job_of(catalog: Catalog, build_id: str) -> BuildJobRow | None:
    with catalog.session() as s:
        return s.get(BuildJobRow, build_id)


def claim(catalog: Catalog, build_id: str, worker: str) -> int | None:
    """Start the next attempt of a queued build on ``worker``: returns its number (the fencing token),
    or None when the build is no longer to run (cancelled, finished, attempts used up)."""
    with catalog.session(write=True) as s, s.begin():
        job = s.scalar(select(BuildJobRow).where(BuildJobRow.build_id == build_id).with_for_update())
        build = s.get(BuildRow, build_id)
        if job is None or build is None or build.status not in ("queued", "running"):
            return None
        now = utcnow()
        _close_open_attempts(s, build_id, "lost", f"superseded by attempt {job.attempt + 1}")
        if job.attempt >= job.max_attempts:
            build.status, build.finished = "failed", now
            build.error = f"gave up after {job.attempt} attempt(s): the last worker was lost"
            return None
        job.attempt += 1
        s.add(
            BuildAttemptRow(
                build_id=build_id, attempt=job.attempt, worker=worker, host=hostname(), started=now
            )
        )
        build.status, build.host, build.error, build.finished = "running", hostname(), None, None
        return job.attempt


def end_attempt(
    catalog: Catalog, build_id: str, attempt: int, outcome: str, error: str | None = None
) -> None:
    """Record how an attempt ended; if it was still the current one and the build is still running
    (its process died before recording anything), mark the build failed with ``error``."""
    with catalog.session(write=True) as s, s.begin():
        row = s.scalar(
            select(BuildAttemptRow).where(
                BuildAttemptRow.build_id == build_id, BuildAttemptRow.attempt == attempt
            )
        )
        if row is not None and row.finished is None:
            row.finished, row.outcome, row.error = utcnow(), outcome, error
        job = s.scalar(select(BuildJobRow).where(BuildJobRow.build_id == build_id).with_for_update())
        build = s.get(BuildRow, build_id)
        if job is not None and build is not None and job.attempt == attempt and build.status == "running":
            build.status, build.finished, build.error = "failed", utcnow(), error or outcome


def requeue_lost(catalog: Catalog, build_id: str, reason: str) -> bool:
    """A stalled job's build goes back to ``queued`` (its open attempt marked lost); False when its
    attempts are used up (then it is marked failed with ``reason``)."""
    with catalog.session(write=True) as s, s.begin():
        job = s.scalar(select(BuildJobRow).where(BuildJobRow.build_id == build_id).with_for_update())
        build = s.get(BuildRow, build_id)
        if job is None or build is None:
            return False
        _close_open_attempts(s, build_id, "lost", reason)
        if build.status not in ("queued", "running"):
            return False
        if job.attempt >= job.max_attempts:
            build.status, build.finished = "failed", utcnow()
            build.error = f"{reason}; gave up after {job.attempt} attempt(s)"
            return False
        build.status, build.error = "queued", f"retrying: {reason}"
        return True


def cancel_in(s: Session, build_id: str) -> None:
    """Mark a cancelled build failed ("cancelled"), in the caller's transaction."""
    build = s.get(BuildRow, build_id)
    if build is not None and build.status in ("queued", "running"):
        build.status, build.finished, build.error = "failed", utcnow(), "cancelled"
    _close_open_attempts(s, build_id, "cancelled", "cancelled")


def cancelled(catalog: Catalog, build_id: str, attempt: int) -> None:
    """The worker aborted ``attempt`` on request: say so on the build, over its "interrupted"."""
    with catalog.session(write=True) as s, s.begin():
        job = s.scalar(select(BuildJobRow).where(BuildJobRow.build_id == build_id).with_for_update())
        build = s.get(BuildRow, build_id)
        if job is not None and build is not None and job.attempt == attempt and build.status != "succeeded":
            build.status, build.finished, build.error = "failed", build.finished or utcnow(), "cancelled"
        s.execute(
            update(BuildAttemptRow)
            .where(BuildAttemptRow.build_id == build_id, BuildAttemptRow.attempt == attempt)
            .values(
                finished=func.coalesce(BuildAttemptRow.finished, utcnow()),
                outcome="cancelled",
                error="cancelled",
            )
        )


def attempts(catalog: Catalog, build_id: str) -> list[dict[str, Any]]:
    with catalog.session() as s:
        rows = s.scalars(
            select(BuildAttemptRow)
            .where(BuildAttemptRow.build_id == build_id)
            .order_by(BuildAttemptRow.attempt)
        ).all()
        return [
            {
                "attempt": r.attempt,
                "worker": r.worker,
                "host": r.host,
                "started": r.started,
                "finished": r.finished,
                "outcome": r.outcome,
                "error": r.error,
            }
            for r in rows
        ]


def _close_open_attempts(s: Session, build_id: str, outcome: str, error: str) -> None:
    s.execute(
        update(BuildAttemptRow)
        .where(BuildAttemptRow.build_id == build_id, BuildAttemptRow.finished.is_(None))
        .values(finished=utcnow(), outcome=outcome, error=error)
    )


# --- workers -------------------------------------------------------------------------------------


def register_worker(
    catalog: Catalog, worker: str, *, pid: int, queue: str, offer: Capabilities, concurrency: int
) -> None:
    now = utcnow()
    with catalog.session(write=True) as s, s.begin():
        s.add(
            WorkerRow(
                id=worker,
                host=hostname(),
                pid=pid,
                queue=queue,
                capabilities=offer.model_dump(),
                concurrency=concurrency,
                started=now,
                last_seen=now,
            )
        )


def worker_seen(catalog: Catalog, worker: str, *, stopped: bool = False) -> None:
    now = utcnow()
    with catalog.session(write=True) as s, s.begin():
        values: dict[str, Any] = {"last_seen": now, **({"stopped": now} if stopped else {})}
        s.execute(update(WorkerRow).where(WorkerRow.id == worker).values(**values))


def live_workers(catalog: Catalog, now: datetime | None = None) -> list[WorkerRow]:
    since = (now or datetime.now(UTC)) - LIVE_AFTER
    with catalog.session() as s:
        return list(
            s.scalars(
                select(WorkerRow).where(WorkerRow.stopped.is_(None), WorkerRow.last_seen >= since)
            ).all()
        )


def why_waiting(catalog: Catalog, build_id: str) -> str | None:
    """For a queued build: why no worker takes it ("waiting: no worker with capability arm64")."""
    job = job_of(catalog, build_id)
    if job is None:
        return None
    needs = Capabilities.model_validate(job.requirements)
    base = job.queue.split(".", 1)[0]
    offers = [(w.queue, Capabilities.model_validate(w.capabilities)) for w in live_workers(catalog)]
    return waiting_reason(needs, base, offers)


def current_builds(catalog: Catalog) -> dict[str, str]:
    """worker id -> the build its open attempt runs."""
    with catalog.session() as s:
        rows = s.execute(
            select(BuildAttemptRow.worker, BuildAttemptRow.build_id).where(BuildAttemptRow.finished.is_(None))
        ).all()
        return {worker: build for worker, build in rows}
