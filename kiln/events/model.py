"""Typed events: a CloudEvents 1.0 envelope (structured JSON mode) around one typed ``data`` model.

Build the events with the constructors below (``build_started(...)``, ``image_state_changed(...)``),
never by hand: they fix each event's ``type``, ``subject`` and ``data`` shape, which receivers rely on.
"""

from __future__ import annotations

import fnmatch
import socket
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
PREFIX = "dev.kiln."
CONTENT_TYPE = "application/cloudevents+json"

BUILD_QUEUED = "dev.kiln.build.queued"
BUILD_STARTED = "dev.kiln.build.started"
BUILD_SUCCEEDED = "dev.kiln.build.succeeded"
BUILD_FAILED = "dev.kiln.build.failed"
BUILD_CANCELLED = "dev.kiln.build.cancelled"
IMAGE_RECORDED = "dev.kiln.image.recorded"
IMAGE_STATE_CHANGED = "dev.kiln.image.state-changed"
PIPELINE_RUN_SKIPPED = "dev.kiln.pipeline.run-skipped"
PIPELINE_RUN_QUEUED = "dev.kiln.pipeline.run-queued"
PIPELINE_RUN_SUCCEEDED = "dev.kiln.pipeline.run-succeeded"
PIPELINE_RUN_FAILED = "dev.kiln.pipeline.run-failed"
PIPELINE_RUN_INTERRUPTED = "dev.kiln.pipeline.run-interrupted"
PIPELINE_RUN_CANCELLED = "dev.kiln.pipeline.run-cancelled"
CVE_FOUND = "dev.kiln.cve.found"
TYPES = (
    BUILD_QUEUED,
    BUILD_STARTED,
    BUILD_SUCCEEDED,
    BUILD_FAILED,
    BUILD_CANCELLED,
    IMAGE_RECORDED,
    IMAGE_STATE_CHANGED,
    PIPELINE_RUN_SKIPPED,
    PIPELINE_RUN_QUEUED,
    PIPELINE_RUN_SUCCEEDED,
    PIPELINE_RUN_FAILED,
    PIPELINE_RUN_INTERRUPTED,
    PIPELINE_RUN_CANCELLED,
    CVE_FOUND,
)


def source() -> str:
    """The CloudEvents ``source``: this Kiln host (a URI reference)."""
    return f"/kiln/{socket.gethostname()}"


class Event(BaseModel):
    """A CloudEvents 1.0 event; ``pipeline`` is a Kiln extension attribute (set on pipeline events)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, max_length=64)
    source: str = Field(default_factory=source, max_length=255)
    type: str = Field(pattern=r"^dev\.kiln\.[a-z][a-z0-9.-]*$", max_length=128)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    pipeline: str | None = Field(default=None, max_length=255)
    data: dict[str, Any] = Field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """The structured-mode JSON object (unset optional attributes left out, as the spec asks)."""
        return self.model_dump(mode="json", exclude_none=True)

    def body(self) -> bytes:
        """The exact bytes sent to webhooks (and signed)."""
        return self.model_dump_json(exclude_none=True).encode()


def type_matches(event_type: str, patterns: list[str]) -> bool:
    """``patterns`` are shell globs over the type, with or without ``dev.kiln.`` (``build.*``); none: all."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(event_type, full_pattern(p)) for p in patterns)


def full_pattern(pattern: str) -> str:
    return pattern if pattern.startswith(PREFIX) or pattern == "*" else PREFIX + pattern


# --- the event of each kind -------------------------------------------------------------------


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True)


class BuildData(_Data):
    build_id: str
    recipe: str
    version: str
    status: str
    error: str | None = None
    image: str | None = None


class QueuedData(_Data):
    job: str
    recipe_path: str
    requester: str | None = None


class ImageData(_Data):
    image: str  # name@version/build
    name: str
    version: str
    build_number: int
    digest: str
    build_id: str


class ImageStateData(_Data):
    image: str
    previous: str
    state: str
    reason: str | None = None


class PipelineSkippedData(_Data):
    pipeline: str
    reason: str
    run_id: str | None = None
    trigger: dict[str, Any] = Field(default_factory=dict)


class PipelineRunData(_Data):
    pipeline: str
    run_id: str
    status: str
    trigger: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    build_id: str | None = None


class CveData(_Data):
    image: str
    vuln_id: str
    package: str
    installed: str
    fixed: str | None
    severity: str
    status: str


def _event(type_: str, subject: str, data: _Data, **extra: Any) -> Event:
    return Event(type=type_, subject=subject, data=data.model_dump(mode="json"), **extra)


def build_queued(job: str, recipe_path: str, requester: str | None) -> Event:
    return _event(
        BUILD_QUEUED, f"jobs/{job}", QueuedData(job=job, recipe_path=recipe_path, requester=requester)
    )


BuildOutcome = Literal["started", "succeeded", "failed", "cancelled"]
_BUILD_TYPES = {
    "started": BUILD_STARTED,
    "succeeded": BUILD_SUCCEEDED,
    "failed": BUILD_FAILED,
    "cancelled": BUILD_CANCELLED,
}


def build_event(
    outcome: BuildOutcome,
    build_id: str,
    recipe: str,
    version: str,
    *,
    error: str | None = None,
    image: str | None = None,
) -> Event:
    status = {"started": "running", "cancelled": "failed"}.get(outcome, outcome)
    data = BuildData(
        build_id=build_id, recipe=recipe, version=version, status=status, error=error, image=image
    )
    return _event(_BUILD_TYPES[outcome], f"builds/{build_id}", data)


def image_recorded(name: str, version: str, build_number: int, digest: str, build_id: str) -> Event:
    ref = f"{name}@{version}/{build_number}"
    data = ImageData(
        image=ref, name=name, version=version, build_number=build_number, digest=digest, build_id=build_id
    )
    return _event(IMAGE_RECORDED, f"images/{ref}", data)


def image_state_changed(image: str, previous: str, state: str, reason: str | None = None) -> Event:
    """For the lifecycle: ``image`` is ``name@version/build``; emit it in the transaction that changes it."""
    data = ImageStateData(image=image, previous=previous, state=state, reason=reason)
    return _event(IMAGE_STATE_CHANGED, f"images/{image}", data)


def pipeline_run_skipped(
    pipeline: str, reason: str, *, run_id: str | None = None, trigger: dict[str, Any] | None = None
) -> Event:
    """For the pipelines: a scheduled or triggered run that did not run, and why."""
    data = PipelineSkippedData(pipeline=pipeline, reason=reason, run_id=run_id, trigger=trigger or {})
    return _event(PIPELINE_RUN_SKIPPED, f"pipelines/{pipeline}", data, pipeline=pipeline)


_RUN_TYPES = {
    "queued": PIPELINE_RUN_QUEUED,
    "succeeded": PIPELINE_RUN_SUCCEEDED,
    "failed": PIPELINE_RUN_FAILED,
    "interrupted": PIPELINE_RUN_INTERRUPTED,
    "cancelled": PIPELINE_RUN_CANCELLED,
}


def pipeline_run(
    status: str,
    pipeline: str,
    run_id: str,
    trigger: dict[str, Any],
    *,
    reason: str | None = None,
    build_id: str | None = None,
) -> Event:
    """For the pipelines: a run was queued or ended: ``status`` is queued, succeeded, failed,
    interrupted or cancelled."""
    data = PipelineRunData(
        pipeline=pipeline, run_id=run_id, status=status, trigger=trigger, reason=reason, build_id=build_id
    )
    return _event(_RUN_TYPES[status], f"pipelines/{pipeline}/runs/{run_id}", data, pipeline=pipeline)


def cve_found(
    image: str, vuln_id: str, package: str, installed: str, fixed: str | None, severity: str, status: str
) -> Event:
    data = CveData(
        image=image,
        vuln_id=vuln_id,
        package=package,
        installed=installed,
        fixed=fixed,
        severity=severity,
        status=status,
    )
    return _event(CVE_FOUND, f"images/{image}/{vuln_id}", data)
