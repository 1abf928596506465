"""Where pipelines announce what happened (run queued, skipped, started, succeeded, failed,
interrupted, cancelled). The events work (kiln/events) replaces :data:`sink` with its emitter; until
then nothing listens. Every call site passes the event type and the run's record."""

from __future__ import annotations

from collections.abc import Callable

from kiln.pipelines.records import RunRecord

EventSink = Callable[[str, RunRecord], None]


def _nowhere(kind: str, run: RunRecord) -> None:
    return None


sink: EventSink = _nowhere


def emit(kind: str, run: RunRecord) -> None:
    sink(kind, run)
