"""Trigger evaluation: which runs are due now. Pure catalog work, called by the daemon each tick.

- schedule: the latest fire time since the last one dealt with is due, however many were missed
  (a daemon down for a week runs a daily pipeline once, not seven times); with
  ``when: updates-available`` it is skipped, with the check's reason, when nothing changed.
- parent: a newer image of a Kiln parent queues one run for that parent version (the cascade).
- component: a newer version of a registry component the recipe takes in a range (``nginx@1.x``)
  queues one run for that version.
- cve: a fixable finding at or above the pipeline's ``cve_severity`` in its newest image
  (kiln.pipelines.cvetrigger, passed in as ``cve``).
- manual: ``kiln pipelines run``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from kiln.catalog.models import ImageRow
from kiln.errors import KilnError
from kiln.pipelines.checks import UpdatesCheck
from kiln.pipelines.components import updates
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.records import PipelineRecord, RunRecord
from kiln.pipelines.store import PipelineStore

log = logging.getLogger("kiln.pipelines")
LATE = timedelta(minutes=1)  # a fire time older than this when seen is a catch-up of a missed one


@dataclass(frozen=True)
class Evaluation:
    queued: list[RunRecord]
    skipped: list[RunRecord]


CveCheck = Callable[
    [PipelineStore, PipelineRecord, datetime, list[RunRecord], list[RunRecord]], None
]  # (store, pipeline, now, queued, skipped): appends what it queued or skipped


class Scheduler:
    def __init__(
        self,
        store: PipelineStore,
        check: UpdatesCheck,
        recipes: PipelineRecipes,
        cve: CveCheck | None = None,
    ) -> None:
        self.store = store
        self.check = check
        self.recipes = recipes
        self.cve = cve

    def evaluate(self, now: datetime) -> Evaluation:
        queued: list[RunRecord] = []
        skipped: list[RunRecord] = []
        for pipeline in self.store.pipelines():
            self._schedule(pipeline, now, queued, skipped)
            self._parents(pipeline, now, queued)
            self._components(pipeline, now, queued)
            if self.cve is not None:
                self.cve(self.store, pipeline, now, queued, skipped)
        return Evaluation(queued, skipped)

    def _schedule(
        self, p: PipelineRecord, now: datetime, queued: list[RunRecord], skipped: list[RunRecord]
    ) -> None:
        timetable = p.pipeline.timetable
        if timetable is None or p.schedule_cursor is None:
            return
        due = timetable.due(p.schedule_cursor, now)
        if due is None:
            return
        self.store.advance(p.name, schedule=due)
        local = due.astimezone(timetable.tz).isoformat(timespec="minutes")
        cause = f"cron {timetable.expression} ({p.pipeline.timezone}) at {local}"
        if now - due > LATE:
            cause += f", caught up (missed: no daemon ran since {p.schedule_cursor:%Y-%m-%d %H:%M} UTC)"
        key = f"schedule:{due.isoformat()}"
        if not p.enabled:
            reason = f"pipeline disabled: {p.disabled_reason or 'by a user'}"
            skipped.append(self.store.skip(p.name, "schedule", cause, key, now, reason))
            return
        if p.pipeline.when == "updates-available":
            try:
                verdict = self.check(p, self.recipes.resolve(p.pipeline.recipe, p.source_path).text)
            except KilnError as exc:
                skipped.append(
                    self.store.skip(p.name, "schedule", cause, key, now, f"recipe unreadable: {exc}")
                )
                return
            if not verdict.available:
                skipped.append(self.store.skip(p.name, "schedule", cause, key, now, verdict.reason))
                return
            cause += f"; {verdict.reason}"
        run = self.store.enqueue(p.name, "schedule", cause, key, now)
        if run is not None:
            queued.append(run)

    def _parents(self, p: PipelineRecord, now: datetime, queued: list[RunRecord]) -> None:
        if not p.parents:
            return
        cursor = self.store.parent_cursor(p.name)
        seen: dict[str, int] = {}
        with self.store.catalog.session() as s:
            for parent in p.parents:
                newest = s.scalars(
                    select(ImageRow)
                    .where(
                        ImageRow.name == parent,
                        ImageRow.id > cursor.get(parent, 0),
                        ImageRow.state == "active",
                    )
                    .order_by(ImageRow.id.desc())
                    .limit(1)
                ).first()
                if newest is not None:
                    seen[parent] = newest.id
                    ref = f"{newest.name}@{newest.version}/{newest.build_number}"
                    cause = f"new parent image {ref} ({newest.digest[:19]})"
                    if (
                        p.enabled
                        and "parent" in p.pipeline.triggers
                        and not self.store.join_queued(p.name, cause)
                    ):
                        run = self.store.enqueue(
                            p.name,
                            "parent",
                            cause,
                            f"parent:{ref}",
                            now,
                        )
                        if run is not None:
                            queued.append(run)
        if seen:
            self.store.advance(p.name, parents=seen)

    def _components(self, p: PipelineRecord, now: datetime, queued: list[RunRecord]) -> None:
        if not p.components or "component" not in p.pipeline.triggers:
            return
        found, moved = updates(self.store.catalog, self.store.component_cursor(p.name))
        for update in found if p.enabled else ():
            run = self.store.enqueue(p.name, "component", update.cause, update.key, now)
            if run is not None:
                queued.append(run)
        if moved:
            self.store.advance(p.name, components=moved)
