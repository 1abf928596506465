"""Public records of pipelines and runs (what the CLI prints and ``--json`` shows)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kiln.pipelines.model import Pipeline

RunStatus = Literal["queued", "running", "succeeded", "failed", "skipped", "interrupted", "cancelled"]
ACTIVE: tuple[RunStatus, ...] = ("queued", "running")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Trigger(_Record):
    """Why a run exists: ``type`` (schedule, parent, component, cve, manual, retry) and its cause
    (the fire time, the parent version, the CVE, who asked)."""

    type: str
    cause: str


class RunRecord(_Record):
    id: str
    pipeline: str
    trigger: Trigger
    status: RunStatus
    reason: str | None  # why it was skipped, how it failed, why it was interrupted
    params: dict[str, str]
    build_id: str | None
    retry_of: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None


class PipelineRecord(_Record):
    name: str
    pipeline: Pipeline
    source_path: Path
    recipe_path: Path
    image: str
    parents: list[str]
    components: list[str]  # registry component ranges its recipe uses (nginx@1.x)
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    applied: datetime
    schedule_cursor: datetime | None
