"""Where pipelines announce what happened to a run: ``pipeline.run.queued``, ``.skipped``,
``.succeeded``, ``.failed``, ``.interrupted``, ``.cancelled``.

Every call site passes the session of the transaction that made the change, so an event can be
recorded if and only if the change is committed. kiln.events replaces :data:`sink`, e.g.::

    def sink(s, kind, run):
        if kind == "pipeline.run.skipped":
            emit(s, pipeline_run_skipped(run.pipeline, run.reason or "", run_id=run.id,
                                         trigger=run.trigger.model_dump()))
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from kiln.pipelines.records import RunRecord

EventSink = Callable[[Session, str, RunRecord], None]


def _nowhere(s: Session, kind: str, run: RunRecord) -> None:
    return None


sink: EventSink = _nowhere


def emit(s: Session, kind: str, run: RunRecord) -> None:
    sink(s, kind, run)
