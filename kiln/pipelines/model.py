"""The pipeline file: a recipe plus when to build it (schedule, triggers) and what follows a build.

A pipeline names its recipe by path (relative to the pipeline file) or as a catalogued
``name@version`` (resolved by :class:`kiln.pipelines.recipes.PipelineRecipes`). ``tests`` turns the
recipe's test phases off or bounds their time (:mod:`kiln.pipelines.options`); the daemon
preflights the ``distribution`` targets before a run's build, publishes to them after it and then
applies the ``lifecycle`` policy file (:mod:`kiln.pipelines.release`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kiln.pipelines.schedule import Schedule, normalize, zone

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
TriggerType = Literal["parent", "component", "cve", "manual"]
RunTrigger = Literal["schedule", "parent", "component", "cve", "manual", "retry"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestsSpec(_Strict):
    """Image Builder's image tests configuration: the recipe's test phases run (``enabled``) within
    ``timeout_minutes`` (past it the run's build fails), or not at all (the image is recorded untested)."""

    enabled: bool = Field(True, description="run the recipe's test phases (false: recorded as skipped)")
    timeout_minutes: int = Field(
        720, ge=60, le=1440, description="the test stage may take this long; past it the build fails"
    )


class Pipeline(_Strict):
    """A recipe built by itself: on a schedule, when a parent or component changes, or on demand."""

    name: str = Field(description="pipeline name: lowercase letters, digits, '.', '_', '-'")
    description: str = ""
    recipe: str = Field(description="recipe file (relative to this file) or catalogued name@version")
    timezone: str = Field("UTC", description="IANA time zone the schedule is read in, e.g. Europe/Berlin")
    schedule: str | None = Field(
        None, description="`cron(0 4 * * 1-5)` or `0 4 * * 1-5` (minute hour day month weekday)"
    )
    when: Literal["always", "updates-available"] = Field(
        "always", description="on schedule: always, or only when the parent, a component or packages changed"
    )
    triggers: list[TriggerType] = Field(
        default_factory=lambda: list[TriggerType](["parent", "manual"]),
        description="what else starts a run: parent, component, cve, manual",
    )
    cve_severity: Literal["negligible", "low", "medium", "high", "critical"] = Field(
        "high", description="the `cve` trigger: lowest severity of a fixable finding that starts a rebuild"
    )
    tests: TestsSpec = Field(default_factory=TestsSpec)
    distribution: list[str] = Field(
        default_factory=list, description="names of the recipe's distribution targets to publish to"
    )
    lifecycle: str | None = Field(None, description="lifecycle policy reference (passed on)")
    enabled: bool = True
    auto_disable_after: int | None = Field(
        None, ge=1, description="disable after N consecutive failed runs (a manual success re-enables)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (at most 128)")
        return value

    @field_validator("triggers")
    @classmethod
    def _unique(cls, value: list[TriggerType]) -> list[TriggerType]:
        for item in value:
            if value.count(item) > 1:
                raise ValueError(f"'{item}' is listed twice")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            normalize(value)
        return value

    @model_validator(mode="after")
    def _when_needs_schedule(self) -> Pipeline:
        if self.schedule is None and self.when != "always":
            raise ValueError("when: 'updates-available' needs a schedule")
        return self

    @property
    def timetable(self) -> Schedule | None:
        return None if self.schedule is None else Schedule(self.schedule, self.timezone)
