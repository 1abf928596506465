"""The event of a run's new status, recorded in the transaction that set it (kiln.events): the
event exists if and only if the change was committed. ``running`` has none of its own (the build's
``build.started`` follows)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kiln.events.emit import emit
from kiln.events.model import pipeline_run, pipeline_run_skipped
from kiln.pipelines.records import RunRecord


def announce(s: Session, run: RunRecord) -> None:
    trigger = run.trigger.model_dump()
    if run.status == "skipped":
        emit(s, pipeline_run_skipped(run.pipeline, run.reason or "", run_id=run.id, trigger=trigger))
    elif run.status != "running":
        emit(
            s,
            pipeline_run(run.status, run.pipeline, run.id, trigger, reason=run.reason, build_id=run.build_id),
        )
