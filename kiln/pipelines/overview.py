"""What a pipeline's page shows beside its definition: when it runs next, and why its last scheduled
run was skipped (the CLI's ``list``/``show`` and the API share these)."""

from __future__ import annotations

from datetime import datetime

from kiln.pipelines.records import PipelineRecord, RunRecord


def next_run(p: PipelineRecord, now: datetime) -> datetime | None:
    """The next fire time of an enabled, scheduled pipeline (None: not scheduled, or disabled)."""
    timetable = p.pipeline.timetable
    if timetable is None or not p.enabled:
        return None
    return timetable.next_after(max(p.schedule_cursor or now, now))


def last_scheduled_skip(runs: list[RunRecord]) -> RunRecord | None:
    """The newest scheduled run, when it was skipped (``runs``: newest first)."""
    scheduled = [r for r in runs if r.trigger.type == "schedule"]
    return scheduled[0] if scheduled and scheduled[0].status == "skipped" else None
