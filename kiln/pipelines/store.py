"""Pipelines and runs in the catalog: one transaction per change, so a daemon killed at any point
leaves rows another daemon can continue from."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiln.catalog import Catalog
from kiln.catalog.models import ImageRow
from kiln.catalog.pipelines import PipelineRow, PipelineRunRow
from kiln.errors import KilnError, NotFound
from kiln.pipelines.cascade import check_acyclic
from kiln.pipelines.components import newest_in_range
from kiln.pipelines.events import announce
from kiln.pipelines.load import LoadedPipeline
from kiln.pipelines.model import Pipeline
from kiln.pipelines.records import ACTIVE, PipelineRecord, RunRecord, RunStatus, Trigger

FINAL: tuple[RunStatus, ...] = ("succeeded", "failed", "skipped", "interrupted", "cancelled")


def pipeline_record(row: PipelineRow) -> PipelineRecord:
    return PipelineRecord(
        name=row.name,
        pipeline=Pipeline.model_validate(row.definition),
        source_path=row.source_path,
        recipe_path=row.recipe_path,
        image=row.image,
        parents=list(row.parents),
        components=list(row.component_cursor),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        applied=row.applied,
        schedule_cursor=row.schedule_cursor,
    )


def run_record(row: PipelineRunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        pipeline=row.pipeline,
        trigger=Trigger(type=row.trigger, cause=row.cause),
        status=row.status,
        reason=row.reason,
        params=dict(row.params),
        build_id=row.build_id,
        retry_of=row.retry_of,
        created=row.created,
        started=row.started,
        finished=row.finished,
    )


def run_id() -> str:
    """32 hex digits that sort in creation order (nanoseconds, then random), so equal times stay FIFO."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


def newest_image_id(s: Session, name: str) -> int:
    return s.scalar(select(func.max(ImageRow.id)).where(ImageRow.name == name)) or 0


class PipelineStore:
    """The pipelines' side of the catalog; ``catalog`` stays open for the store's lifetime."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # --- pipelines ----------------------------------------------------------------------------

    def apply(self, loaded: Sequence[LoadedPipeline], now: datetime) -> list[tuple[str, str]]:
        """Create or update ``loaded`` in one transaction (all or none); a cycle in the resulting
        cascade graph is refused. Returns (name, ``created`` | ``updated`` | ``unchanged``) pairs."""
        changes: list[tuple[str, str]] = []
        # read before the write transaction (the registry may seed its built-ins on first read)
        newest = {c: newest_in_range(self.catalog, c) for item in loaded for c in item.components}
        with self.catalog.session(write=True) as s, s.begin():
            rows = {r.name: r for r in s.scalars(select(PipelineRow)).all()}
            graph = {name: (r.image, tuple(r.parents)) for name, r in rows.items()}
            graph.update({item.pipeline.name: (item.image, item.parents) for item in loaded})
            check_acyclic(graph)
            for item in loaded:
                definition = item.pipeline.model_dump(mode="json")
                row = rows.get(item.pipeline.name)
                if row is None:
                    cursor = {p: newest_image_id(s, p) for p in item.parents}
                    row = PipelineRow(
                        name=item.pipeline.name,
                        definition=definition,
                        source_path=str(item.path),
                        recipe_path=str(item.recipe.path),
                        image=item.image,
                        parents=list(item.parents),
                        enabled=item.pipeline.enabled,
                        disabled_reason=None,
                        consecutive_failures=0,
                        applied=now,
                        schedule_cursor=now,
                        parent_cursor=cursor,
                        component_cursor={c: newest[c] for c in item.components},
                    )
                    s.add(row)
                    changes.append((row.name, "created"))
                    continue
                same = (
                    row.definition == definition
                    and row.source_path == str(item.path)
                    and row.recipe_path == str(item.recipe.path)
                    and list(row.parents) == list(item.parents)
                    and list(row.component_cursor) == list(item.components)
                )
                if same and row.image == item.image:
                    changes.append((row.name, "unchanged"))
                    continue
                if row.definition.get("enabled") != item.pipeline.enabled:
                    row.enabled, row.disabled_reason = item.pipeline.enabled, None
                timing = ("schedule", "timezone")
                if any(row.definition.get(k) != definition.get(k) for k in timing):
                    row.schedule_cursor = now  # a new timetable starts now: no catch-up of the old one
                row.definition, row.source_path = definition, str(item.path)
                row.recipe_path, row.image, row.applied = str(item.recipe.path), item.image, now
                cursor = dict(row.parent_cursor)
                row.parent_cursor = {p: cursor.get(p, newest_image_id(s, p)) for p in item.parents}
                row.parents = list(item.parents)
                seen = dict(row.component_cursor)
                row.component_cursor = {c: seen.get(c, newest[c]) for c in item.components}
                changes.append((row.name, "updated"))
        return changes

    def pipelines(self) -> list[PipelineRecord]:
        with self.catalog.session() as s:
            return [pipeline_record(r) for r in s.scalars(select(PipelineRow).order_by(PipelineRow.name))]

    def get(self, name: str) -> PipelineRecord:
        with self.catalog.session() as s:
            return pipeline_record(self._row(s, name))

    def set_enabled(self, name: str, enabled: bool, reason: str | None = None) -> PipelineRecord:
        with self.catalog.session(write=True) as s, s.begin():
            row = self._row(s, name)
            row.enabled, row.disabled_reason = enabled, None if enabled else reason
            if enabled:
                row.consecutive_failures = 0
            return pipeline_record(row)

    def advance(
        self,
        name: str,
        *,
        schedule: datetime | None = None,
        parents: dict[str, int] | None = None,
        components: dict[str, str] | None = None,
    ) -> None:
        """Move the pipeline's cursors: the last fire time dealt with, the newest parent images and
        component versions seen."""
        with self.catalog.session(write=True) as s, s.begin():
            row = self._row(s, name)
            if schedule is not None:
                row.schedule_cursor = schedule
            if parents:
                row.parent_cursor = {**row.parent_cursor, **parents}
            if components:
                row.component_cursor = {**row.component_cursor, **components}

    def parent_cursor(self, name: str) -> dict[str, int]:
        with self.catalog.session() as s:
            return {k: int(v) for k, v in self._row(s, name).parent_cursor.items()}

    def component_cursor(self, name: str) -> dict[str, str | None]:
        with self.catalog.session() as s:
            return {
                k: (None if v is None else str(v)) for k, v in self._row(s, name).component_cursor.items()
            }

    @staticmethod
    def _row(s: Session, name: str) -> PipelineRow:
        row = s.get(PipelineRow, name)
        if row is None:
            names = s.scalars(select(PipelineRow.name).order_by(PipelineRow.name)).all()
            raise NotFound(
                f"no pipeline {name!r}",
                hint="applied pipelines: " + (", ".join(names) or "none; see: kiln pipelines apply FILE"),
            )
        return row

    # --- runs ---------------------------------------------------------------------------------

    def enqueue(
        self,
        pipeline: str,
        trigger: str,
        cause: str,
        key: str,
        now: datetime,
        *,
        params: dict[str, str] | None = None,
        retry_of: str | None = None,
    ) -> RunRecord | None:
        """Queue a run; None when a run of the same pipeline for the same cause is already queued or
        running (de-duplication)."""
        with self.catalog.session(write=True) as s, s.begin():
            self._row(s, pipeline)
            dup = s.scalar(
                select(PipelineRunRow.id)
                .where(
                    PipelineRunRow.pipeline == pipeline,
                    PipelineRunRow.cause_key == key,
                    PipelineRunRow.status.in_(ACTIVE),
                )
                .limit(1)
            )
            if dup is not None:
                return None
            row = self._new_run(pipeline, trigger, cause, key, now, "queued", None, params, retry_of)
            s.add(row)
            record = run_record(row)
            announce(s, record)
        return record

    def join_queued(self, pipeline: str, cause: str) -> RunRecord | None:
        """Add ``cause`` to the pipeline's queued (not yet started) run, which builds on the newest
        parents anyway; None when it has none."""
        with self.catalog.session(write=True) as s, s.begin():
            row = s.scalars(
                select(PipelineRunRow)
                .where(PipelineRunRow.pipeline == pipeline, PipelineRunRow.status == "queued")
                .order_by(PipelineRunRow.created.desc(), PipelineRunRow.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            row.cause = f"{row.cause}; {cause}"
            return run_record(row)

    def skip(
        self, pipeline: str, trigger: str, cause: str, key: str, now: datetime, reason: str
    ) -> RunRecord:
        """Record a run that did not happen, and why."""
        with self.catalog.session(write=True) as s, s.begin():
            row = self._new_run(pipeline, trigger, cause, key, now, "skipped", reason, None, None)
            row.finished = now
            s.add(row)
            record = run_record(row)
            announce(s, record)
        return record

    @staticmethod
    def _new_run(
        pipeline: str,
        trigger: str,
        cause: str,
        key: str,
        now: datetime,
        status: str,
        reason: str | None,
        params: dict[str, str] | None,
        retry_of: str | None,
    ) -> PipelineRunRow:
        return PipelineRunRow(
            id=run_id(),
            pipeline=pipeline,
            trigger=trigger,
            cause=cause,
            cause_key=key[:512],
            status=status,
            reason=reason,
            params=dict(params or {}),
            retry_of=retry_of,
            created=now,
        )

    def runs(
        self, pipeline: str | None = None, statuses: Sequence[str] | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Runs, newest first."""
        query = select(PipelineRunRow).order_by(PipelineRunRow.created.desc(), PipelineRunRow.id.desc())
        if pipeline is not None:
            query = query.where(PipelineRunRow.pipeline == pipeline)
        if statuses is not None:
            query = query.where(PipelineRunRow.status.in_(statuses))
        with self.catalog.session() as s:
            if pipeline is not None:
                self._row(s, pipeline)
            return [run_record(r) for r in s.scalars(query.limit(limit))]

    def run(self, run_id: str) -> RunRecord:
        with self.catalog.session() as s:
            return run_record(self._run_row(s, run_id))

    def start(self, run_id: str, now: datetime, owner: tuple[str, int, int | None]) -> None:
        with self.catalog.session(write=True) as s, s.begin():
            row = self._run_row(s, run_id)
            if row.status != "queued":
                raise KilnError(f"run {run_id} is {row.status}, not queued")
            row.status, row.started = "running", now
            row.daemon_host, row.daemon_pid, row.daemon_pid_start = owner

    def adopt(self, run_id: str, owner: tuple[str, int, int | None]) -> None:
        """Make ``owner`` the daemon of a running run (its build outlived the daemon that started it)."""
        with self.catalog.session(write=True) as s, s.begin():
            row = self._run_row(s, run_id)
            row.daemon_host, row.daemon_pid, row.daemon_pid_start = owner

    def attach_build(self, run_id: str, build_id: str, job: str) -> None:
        with self.catalog.session(write=True) as s, s.begin():
            row = self._run_row(s, run_id)
            row.build_id, row.job = build_id, job

    def note(self, run_id: str, reason: str) -> None:
        """Say what a running run is doing (``releasing: ...``) in its reason."""
        with self.catalog.session(write=True) as s, s.begin():
            self._run_row(s, run_id).reason = reason

    def owners(self) -> list[tuple[RunRecord, str | None, tuple[str | None, int | None, int | None]]]:
        """Running runs with their executor job and the daemon (host, pid, start) that runs them."""
        with self.catalog.session() as s:
            rows = s.scalars(select(PipelineRunRow).where(PipelineRunRow.status == "running")).all()
            return [(run_record(r), r.job, (r.daemon_host, r.daemon_pid, r.daemon_pid_start)) for r in rows]

    def finish(self, run_id: str, status: RunStatus, now: datetime, reason: str | None = None) -> RunRecord:
        """End a run; failures count towards ``auto_disable_after``, a manual success re-enables."""
        assert status in FINAL
        with self.catalog.session(write=True) as s, s.begin():
            row = self._run_row(s, run_id)
            row.status, row.reason, row.finished = status, reason, now
            pipeline = self._row(s, row.pipeline)
            limit: Any = pipeline.definition.get("auto_disable_after")
            if status == "succeeded":
                pipeline.consecutive_failures = 0
                if row.trigger == "manual" and not pipeline.enabled and pipeline.disabled_reason:
                    pipeline.enabled, pipeline.disabled_reason = True, None
            elif status == "failed":
                pipeline.consecutive_failures += 1
                if limit and pipeline.consecutive_failures >= int(limit) and pipeline.enabled:
                    pipeline.enabled = False
                    pipeline.disabled_reason = (
                        f"auto-disabled after {pipeline.consecutive_failures} "
                        "consecutive failed runs (a successful manual run re-enables)"
                    )
            record = run_record(row)
            announce(s, record)
        return record

    @staticmethod
    def _run_row(s: Session, run_id: str) -> PipelineRunRow:
        rows = s.scalars(
            select(PipelineRunRow).where(PipelineRunRow.id.startswith(run_id.lower())).limit(2)
        ).all()
        if len(rows) != 1:
            raise NotFound(
                f"no run {run_id!r}" if not rows else f"run id prefix {run_id!r} is ambiguous",
                hint="see: kiln pipelines history NAME",
            )
        return rows[0]
