"""Run a document's phases on a target with AWSTOE's semantics.

Per step: ``if`` (then/else) → attempts (``maxAttempts``, each with its own ``timeoutSeconds`` for
all loop iterations) → outcome by ``onFailure``: ``Abort`` stops the document, ``Continue`` goes on
(document failed), ``Ignore`` goes on (step ``ignored-failure``, document
``success-with-ignored-failure``). Step inputs and outputs are kept in ``chain`` so that a later call
for another phase can resolve ``{{ build.step.outputs.x }}``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kiln.monitor import Event, Monitor
from kiln.settings import Settings
from kiln.toe.document import Document, Phase, Step
from kiln.toe.results import (
    FAILED,
    IGNORED_FAILURE,
    SKIPPED,
    SUCCESS,
    DocumentResult,
    PhaseResult,
    StepResult,
    combine,
)
from kiln.toe.step_exec import RunOptions, StepOutcome, execute_step
from kiln.toe.targets import HostTarget, RootfsTarget, Target

__all__ = [
    "DocumentResult", "HostTarget", "PhaseResult", "RootfsTarget", "RunOptions",
    "StepResult", "Target", "run_document",
]  # fmt: skip


def services(settings: Settings) -> dict[str, Any]:
    """The external services steps may use, from the settings (KILN_S3_ENDPOINT_URL ...)."""
    return {"s3": {"endpoint_url": settings.s3_endpoint_url}} if settings.s3_endpoint_url else {}


def run_document(
    doc: Document,
    *,
    phases: Sequence[str],
    parameters: Mapping[str, str],
    target: Target,
    monitor: Monitor,
    label: str | None = None,
    chain: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
) -> DocumentResult:
    """Run the selected phases in document order (phases the document lacks are skipped)."""
    label = label or doc.name
    state: dict[str, Any] = copy.deepcopy(dict(chain or {}))
    variables = doc.variables(parameters)
    wanted = set(phases)
    result = DocumentResult(doc.name, str(doc.path), SUCCESS, time.time(), 0.0, description=doc.description)
    options = options or RunOptions()
    options = replace(options, stack=(*options.stack, str(doc.path.resolve())))
    run = _Run(doc, target, monitor, label, state, variables, options)
    for phase in doc.phases:
        if phase.name not in wanted:
            continue
        phase_result, aborted = run.phase(phase)
        result.phases.append(phase_result)
        if phase_result.failure_message and result.failure_message is None:
            result.failure_message = phase_result.failure_message
        if aborted:
            break
    result.status = combine([p.status for p in result.phases])
    result.end = time.time()
    result.chain = state
    result.chaining = run.chaining
    return result


def _details(outcome: StepOutcome) -> dict[str, Any]:
    """What the step's end event carries for the logs: the failure and the exact commands run."""
    data: dict[str, Any] = {}
    if outcome.failure_message:
        data["failure"] = outcome.failure_message
    if outcome.processes:
        data["processes"] = outcome.processes
    return data


@dataclass
class _Run:
    doc: Document
    target: Target
    monitor: Monitor
    label: str
    chain: dict[str, Any]
    variables: dict[str, str]
    options: RunOptions
    chaining: list[dict[str, str]] = field(default_factory=list)

    def phase(self, phase: Phase) -> tuple[PhaseResult, bool]:
        fields: dict[str, Any] = {"component": self.label, "phase": phase.name}
        self.monitor.emit(Event("start", scope="phase", message=f"{self.label}: {phase.name}", **fields))
        started = time.monotonic()
        result = PhaseResult(phase.name, SUCCESS, time.time(), 0.0)
        aborted = False
        for step in phase.steps:
            step_result = self.step(phase, step)
            result.steps.append(step_result)
            if step_result.status == FAILED:
                result.failure_message = result.failure_message or step_result.failure_message
                if step.on_failure == "Abort":
                    aborted = True
                    break
        result.status = combine([s.status for s in result.steps])
        result.end = time.time()
        self.monitor.emit(
            Event(
                "end", scope="phase", message=f"{self.label}: {phase.name}", status=result.status,
                duration=time.monotonic() - started, **fields,
            )
        )  # fmt: skip
        return result, aborted

    def step(self, phase: Phase, step: Step) -> StepResult:
        fields: dict[str, Any] = {"component": self.label, "phase": phase.name, "step": step.name}
        message = f"{self.label}: {phase.name}/{step.name} ({step.action})"
        self.monitor.emit(Event("start", scope="step", message=message, **fields))
        started = time.monotonic()

        def output(line: str) -> None:
            self.monitor.emit(Event("output", message=line, **fields))

        outcome: StepOutcome = execute_step(
            step,
            phase=phase.name,
            document=self.doc,
            target=self.target,
            variables=self.variables,
            chain=self.chain,
            output=output,
            monitor=self.monitor,
            label=self.label,
            options=self.options,
            run_nested=run_document,
        )
        status = outcome.status
        if status == FAILED and step.on_failure == "Ignore":
            status = IGNORED_FAILURE
        result = StepResult(
            name=step.name, action=step.action, status=status, on_failure=step.on_failure,
            max_attempts=step.max_attempts, timeout_seconds=step.timeout_seconds, start=outcome.start,
            end=time.time(), attempts=outcome.attempts, inputs=outcome.inputs, outputs=outcome.outputs,
            exit_code=outcome.exit_code, failure_message=outcome.failure_message, reboots=outcome.reboots,
        )  # fmt: skip
        self.chaining.extend(outcome.chaining)
        if status != SKIPPED and outcome.ran:
            self.chain.setdefault(phase.name, {})[step.name] = {
                "inputs": outcome.inputs if outcome.inputs is not None else {},
                "outputs": outcome.outputs,
            }
        self.monitor.emit(
            Event(
                "end", scope="step", message=message, status=status, exit_code=outcome.exit_code,
                duration=time.monotonic() - started,
                data=_details(outcome), **fields,
            )
        )  # fmt: skip
        return result
