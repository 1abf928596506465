"""When a CVE-triggered rebuild counts as done, and when a failed one is tried again.

A set of CVEs in an image is a *cause* (the run's ``cause_key``). Its runs are the runs recorded
with that key plus the re-runs the daemon queued for them after an interruption (``retry_of``). The
cause is:

- ``handled`` once one of those runs succeeded (or was skipped when it was due: a disabled pipeline);
- ``active`` while one is queued or running: nothing else is queued for it;
- otherwise open: after the n-th failed, interrupted or cancelled run it is queued again once
  ``BACKOFF * 2**(n-1)`` has passed since that run ended (measured on the scheduler's clock), at most
  :data:`MAX_ATTEMPTS` runs in all; then the trigger records, once, that it gave up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from kiln.catalog import Catalog
from kiln.catalog.pipelines import PipelineRunRow
from kiln.pipelines.records import ACTIVE

MAX_ATTEMPTS = 3
BACKOFF = timedelta(minutes=30)
UNDONE = ("failed", "interrupted", "cancelled")


@dataclass(frozen=True)
class CauseState:
    handled: bool
    active: bool
    failures: int  # runs that ended failed, interrupted or cancelled
    last_failure: tuple[str, str, str | None, datetime] | None  # (run id, status, reason, finished)

    @property
    def retry_at(self) -> datetime | None:
        """When the cause may be queued again (None: at once, it never failed)."""
        if self.last_failure is None:
            return None
        return self.last_failure[3] + BACKOFF * (1 << (self.failures - 1))

    @property
    def exhausted(self) -> bool:
        return self.failures >= MAX_ATTEMPTS

    def describe_last(self) -> str:
        assert self.last_failure is not None
        run, status, reason, _ = self.last_failure
        return f"run {run} {status}" + (f": {reason}" if reason else "")


def cause_state(catalog: Catalog, pipeline: str, key: str) -> CauseState:
    """The runs of ``pipeline`` for the cause ``key``, and their re-runs, summed up."""
    with catalog.session() as s:
        ids = select(PipelineRunRow.id).where(
            PipelineRunRow.pipeline == pipeline, PipelineRunRow.cause_key == key[:512]
        )
        rows = s.execute(
            select(PipelineRunRow.id, PipelineRunRow.status, PipelineRunRow.reason, PipelineRunRow.finished)
            .where(
                PipelineRunRow.pipeline == pipeline,
                or_(PipelineRunRow.cause_key == key[:512], PipelineRunRow.retry_of.in_(ids)),
            )
            .order_by(PipelineRunRow.created, PipelineRunRow.id)
        ).all()
    failed = [
        (r.id, r.status, r.reason, r.finished or datetime.min.replace(tzinfo=UTC))
        for r in rows
        if r.status in UNDONE
    ]
    return CauseState(
        handled=any(r.status in ("succeeded", "skipped") for r in rows),
        active=any(r.status in ACTIVE for r in rows),
        failures=len(failed),
        last_failure=max(failed, key=lambda f: f[3]) if failed else None,
    )
