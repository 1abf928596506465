"""Public records of the catalog. Their JSON field names are a stable contract (CLI ``--json``, API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiln.models import Artifact, Component, Evidence, Package

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

BuildStatus = Literal["queued", "running", "succeeded", "failed"]
ImageState = Literal["active", "deprecated", "disabled", "retired"]
"""Lifecycle states (kiln.lifecycle.states has the legal transitions between them)."""


def semver_key(version: str) -> tuple[int, ...]:
    """Sort key for ``x.y.z`` versions (numeric, not lexical)."""
    return tuple(int(part) for part in version.split("."))


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The records a build hands over are the build's own models (one definition each).
ComponentRecord = Component
ArtifactRecord = Artifact
EvidenceRecord = Evidence
PackageRecord = Package


class NewImage(_Record):
    """What a successful build hands to :meth:`Catalog.finish_build`."""

    name: str
    version: str
    digest: str
    created: datetime
    parent: str
    parent_digest: str | None = None
    recipe_digest: str = ""
    description: str = ""
    size: int = 0
    components: list[ComponentRecord] = Field(default_factory=list)
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    evidence: list[EvidenceRecord] = Field(default_factory=list)
    packages: list[PackageRecord] = Field(default_factory=list)
    lock: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(
                "must be lower-case letters, digits, '.', '_' or '-', starting with a letter/digit"
            )
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("must be a semantic version x.y.z")
        return value

    @field_validator("created")
    @classmethod
    def _created(cls, value: datetime) -> datetime:
        return as_utc(value)


class ImageRecord(_Record):
    """One recorded image version (``name@version/build``)."""

    name: str
    version: str
    build: int
    digest: str
    created: datetime
    parent: str
    parent_digest: str | None
    recipe_digest: str
    description: str
    size: int
    state: ImageState
    build_id: str
    components: list[ComponentRecord]
    artifacts: list[ArtifactRecord]
    evidence: list[EvidenceRecord]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}/{self.build}"


class BuildRecord(_Record):
    """One execution of a recipe, successful or not."""

    id: str
    recipe_name: str
    recipe_version: str
    recipe_path: str
    status: BuildStatus
    started: datetime
    finished: datetime | None
    duration: float | None
    log_path: str
    error: str | None
    image: str | None
