"""Catalog tables of pipelines (kiln.pipelines): the applied definitions and every run with its
trigger, so a restarted daemon continues where the last one stopped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kiln.catalog.models import Base


class PipelineRow(Base):
    __tablename__ = "pipelines"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[dict[str, Any]]  # the validated pipeline file (kiln.pipelines.model.Pipeline)
    source_path: Mapped[str] = mapped_column(Text)
    recipe_path: Mapped[str] = mapped_column(Text)
    image: Mapped[str] = mapped_column(String(255), index=True)  # the image its recipe produces
    parents: Mapped[list[str]] = mapped_column(JSON)  # Kiln images its recipe builds on
    enabled: Mapped[bool]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    applied: Mapped[datetime]
    schedule_cursor: Mapped[datetime | None]  # the last fire time dealt with (run or skipped)
    parent_cursor: Mapped[dict[str, Any]]  # parent image name -> the newest image id already seen
    # registry component range its recipe uses (``nginx@1.x``) -> the newest version already seen
    component_cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline: Mapped[str] = mapped_column(ForeignKey("pipelines.name", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(Text)
    cause_key: Mapped[str] = mapped_column(String(512), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    build_id: Mapped[str | None] = mapped_column(String(32))
    job: Mapped[str | None] = mapped_column(String(32))
    retry_of: Mapped[str | None] = mapped_column(String(32))
    created: Mapped[datetime]
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    daemon_host: Mapped[str | None] = mapped_column(String(255))
    daemon_pid: Mapped[int | None] = mapped_column(Integer)
    daemon_pid_start: Mapped[int | None] = mapped_column(BigInteger)
