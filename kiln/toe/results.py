"""Results of a run, with AWSTOE's status words and ``detailedoutput.json`` structure.

AWSTOE's words are ``Success``, ``Failed``, ``IgnoredFailure``, ``SuccessWithIgnoredFailure`` and
``Skipped``; its JSON spells them in lower case with dashes, as here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
IGNORED_FAILURE = "ignored-failure"
SUCCESS_WITH_IGNORED_FAILURE = "success-with-ignored-failure"


def timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def combine(statuses: list[str]) -> str:
    """A phase's or document's status from its children's."""
    if FAILED in statuses:
        return FAILED
    if IGNORED_FAILURE in statuses or SUCCESS_WITH_IGNORED_FAILURE in statuses:
        return SUCCESS_WITH_IGNORED_FAILURE
    return SUCCESS


@dataclass
class StepResult:
    name: str
    action: str
    status: str
    on_failure: str
    max_attempts: int
    timeout_seconds: int
    start: float
    end: float
    attempts: int = 0
    inputs: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    failure_message: str | None = None
    reboots: int = 0

    def detailed(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "action": self.action,
            "onFailure": self.on_failure,
            "maxAttempts": self.max_attempts,
            "timeoutSeconds": self.timeout_seconds,
            "attempts": self.attempts,
            "startTime": timestamp(self.start),
            "endTime": timestamp(self.end),
            "inputs": json.dumps(self.inputs, default=str) if self.inputs is not None else "",
            "outputs": json.dumps([self.outputs], default=str) if self.outputs else "",
            "exitCode": self.exit_code,
            "failureMessage": self.failure_message or "",
        }


@dataclass
class PhaseResult:
    name: str
    status: str
    start: float
    end: float
    steps: list[StepResult] = field(default_factory=list)
    failure_message: str | None = None

    def detailed(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "startTime": timestamp(self.start),
            "endTime": timestamp(self.end),
            "failureMessage": self.failure_message or "",
            "steps": [s.detailed() for s in self.steps],
        }


@dataclass
class DocumentResult:
    """Outcome of one document's selected phases; ``chain`` carries step state to later calls."""

    name: str
    path: str
    status: str
    start: float
    end: float
    phases: list[PhaseResult] = field(default_factory=list)
    failure_message: str | None = None
    chain: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    chaining: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def steps(self) -> list[StepResult]:
        return [s for p in self.phases for s in p.steps]

    def counts(self) -> dict[str, int]:
        steps = self.steps()
        return {
            "executedStepCount": sum(1 for s in steps if s.status != SKIPPED),
            "failedStepCount": sum(1 for s in steps if s.status == FAILED),
            "ignoredFailedStepCount": sum(1 for s in steps if s.status == IGNORED_FAILURE),
            "skippedStepCount": sum(1 for s in steps if s.status == SKIPPED),
        }

    def detailed(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filePath": self.path,
            "description": self.description or "",
            "status": self.status,
            "startTime": timestamp(self.start),
            "endTime": timestamp(self.end),
            "failureMessage": self.failure_message or "",
            **self.counts(),
            "phases": [p.detailed() for p in self.phases],
        }
