"""One step: condition, attempts, loop iterations, timeout budget, reboot-and-rerun."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from kiln.errors import KilnError, ValidationFailed
from kiln.monitor import Monitor
from kiln.toe.actions import ActionContext, ActionFailed, RebootRequested
from kiln.toe.conditions import ConditionError, Evaluator
from kiln.toe.docpaths import MAX_NESTING
from kiln.toe.document import Document, Step, load_document, parameter_errors
from kiln.toe.loops import Iteration, LoopError, iterations, loop_resolver
from kiln.toe.results import FAILED, SKIPPED, SUCCESS, DocumentResult
from kiln.toe.targets import Target
from kiln.toe.variables import Resolver, chain_resolver, chained, substitute, variables_resolver

MAX_REBOOT_RERUNS = 1


@dataclass(frozen=True)
class RunOptions:
    """Settings beyond the document: nesting stack (ExecuteDocument), S3 endpoint, environment."""

    stack: tuple[str, ...] = ()
    services: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


class DocumentRunner(Protocol):
    """How ExecuteDocument runs a nested document (:func:`kiln.toe.runner.run_document`, passed down
    by the runner, so this module does not import it)."""

    def __call__(
        self,
        doc: Document,
        *,
        phases: Sequence[str],
        parameters: Mapping[str, str],
        target: Target,
        monitor: Monitor,
        label: str | None = None,
        options: RunOptions | None = None,
    ) -> DocumentResult: ...


@dataclass
class StepOutcome:
    status: str
    start: float
    attempts: int = 0
    ran: bool = False
    inputs: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    failure_message: str | None = None
    reboots: int = 0
    chaining: list[dict[str, str]] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)


class _AttemptFailed(Exception):
    def __init__(
        self,
        message: str,
        exit_code: int | None = None,
        tail: str = "",
        outputs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.tail = tail
        self.outputs = outputs or {}  # a loop's successful iterations before the failing one


def execute_step(
    step: Step,
    *,
    phase: str,
    document: Document,
    target: Target,
    variables: Mapping[str, str],
    chain: Mapping[str, Any],
    output: Callable[[str], None],
    monitor: Monitor,
    label: str,
    options: RunOptions,
    run_nested: DocumentRunner,
) -> StepOutcome:
    outcome = StepOutcome(SUCCESS, time.time())
    base = chained(
        variables_resolver(variables), _recording(chain_resolver(chain), outcome.chaining, phase, step)
    )
    where = f"document {document.name}, phase {phase}, step {step.name}"
    if step.condition is not None:
        try:
            holds = Evaluator(target.root, base)(step.condition.condition)
        except (ConditionError, KilnError, OSError) as exc:
            outcome.status, outcome.failure_message = (
                FAILED,
                f"{where}: condition could not be evaluated: {exc}",
            )
            return outcome
        branch = step.condition.then if holds else step.condition.otherwise
        if branch == "Skip":
            outcome.status = SKIPPED
            output(f"skipped: condition {step.condition.condition.describe()} is {str(holds).lower()}")
            return outcome
        if branch == "Abort":
            outcome.status = FAILED
            described = step.condition.condition.describe()
            outcome.failure_message = (
                f"{where}: aborted because condition {described} is {str(holds).lower()}"
            )
            return outcome
    runner = _Attempts(
        step, target, base, output, label, phase, options, document, monitor, outcome.processes, run_nested
    )
    for attempt in range(1, step.max_attempts + 1):
        outcome.attempts = attempt
        try:
            outcome.inputs, outcome.outputs, outcome.reboots = runner.attempt()
        except _AttemptFailed as failure:
            outcome.ran = True
            outcome.status = FAILED
            outcome.inputs = runner.last_inputs
            outcome.exit_code = failure.exit_code
            outcome.outputs = failure.outputs
            text = f"{where}, attempt {attempt}/{step.max_attempts}: {failure.message}"
            if failure.tail:
                text += f"\n{failure.tail}"
            outcome.failure_message = text
            if attempt < step.max_attempts:
                monitor.warning(
                    f"{label}: {phase}/{step.name} failed, retrying ({attempt}/{step.max_attempts})",
                    component=label, phase=phase, step=step.name,
                )  # fmt: skip
            continue
        outcome.ran = True
        outcome.status, outcome.exit_code, outcome.failure_message = SUCCESS, 0, None
        break
    return outcome


def _joined(collected: dict[str, list[str]]) -> dict[str, Any]:
    return {k: "\n".join(v) for k, v in collected.items()}


def _recording(resolve: Resolver, record: list[dict[str, str]], phase: str, step: Step) -> Resolver:
    """Remember how each chaining expression resolved (``chaining.json``)."""

    def recorder(expression: str) -> str | None:
        value = resolve(expression)
        if value is not None:
            entry = {
                "phase": phase,
                "step": step.name,
                "expression": f"{{{{ {expression} }}}}",
                "value": value,
            }
            if entry not in record:
                record.append(entry)
        return value

    return recorder


@dataclass
class _Attempts:
    step: Step
    target: Target
    base: Resolver
    output: Callable[[str], None]
    label: str
    phase: str
    options: RunOptions
    document: Document
    monitor: Monitor
    processes: list[str]
    run_nested: DocumentRunner
    last_inputs: Any = None  # the latest substituted inputs, reported even when the step fails

    def attempt(self) -> tuple[Any, dict[str, Any], int]:
        """All iterations once; returns (resolved inputs, joined outputs, reboots).

        A failing iteration ends the loop whatever ``onFailure`` says ("If onFailure is set to
        Continue [Ignore], AWSTOE exits the loop"); the outputs of the iterations that succeeded
        before it are kept ("AWSTOE consolidates all successful iteration outputs").
        """
        step = self.step
        deadline = None if step.timeout_seconds == -1 else time.monotonic() + step.timeout_seconds
        try:
            items: list[Iteration | None] = list(iterations(step.loop, self.base)) if step.loop else [None]
        except (LoopError, KilnError) as exc:
            raise _AttemptFailed(f"loop: {exc}") from None
        collected: dict[str, list[str]] = {}
        inputs: Any = None
        reboots = 0
        for item in items:
            try:
                inputs, outputs, rebooted = self.iteration(item, deadline)
            except _AttemptFailed as failure:
                if item is None:
                    raise
                raise _AttemptFailed(
                    f"loop iteration {item.index} ({item.value!r}) failed: {failure.message}",
                    failure.exit_code, failure.tail, _joined(collected),
                ) from None  # fmt: skip
            reboots += rebooted
            for key, value in outputs.items():
                collected.setdefault(key, []).append(str(value))
        return inputs, _joined(collected), reboots

    def iteration(self, item: Iteration | None, deadline: float | None) -> tuple[Any, dict[str, Any], int]:
        step = self.step
        resolve = chained(loop_resolver(step.loop, item), self.base)
        action = step.action_class()
        try:
            raw = substitute(step.inputs, resolve)
            self.last_inputs = raw
            inputs = action.parse(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'inputs'}: {e['msg']}" for e in exc.errors()
            )
            raise _AttemptFailed(f"invalid inputs after substitution: {problems}") from None
        except KilnError as exc:
            raise _AttemptFailed(str(exc)) from None
        reboots = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _AttemptFailed(f"timed out after {step.timeout_seconds}s")
            ctx = ActionContext(
                target=self.target, document=self.document.name, phase=self.phase, step=step.name,
                timeout=remaining, output=self.output, env=dict(self.options.env),
                services={"document_dir": self.document.path.parent, "document_root": self.root,
                          **self.options.services},
                nested=self.nested, processes=self.processes,
            )  # fmt: skip
            try:
                outputs = action.run(ctx, inputs)
            except RebootRequested:
                reboots += 1
                if reboots > MAX_REBOOT_RERUNS:
                    raise _AttemptFailed(
                        "exited 194 (reboot) again after the simulated reboot; a root-filesystem build "
                        "reruns a step once",
                        194,
                    ) from None
                self.output("exit code 194: reboot requested; no kernel to reboot here, rerunning the step")
                continue
            except ActionFailed as exc:
                raise _AttemptFailed(exc.message, exc.returncode, exc.output_tail) from None
            except KilnError as exc:
                raise _AttemptFailed(exc.message) from None
            except OSError as exc:
                raise _AttemptFailed(f"{type(exc).__name__}: {exc}") from None
            if deadline is not None and time.monotonic() > deadline:
                raise _AttemptFailed(f"timed out after {step.timeout_seconds}s")
            return raw, outputs, reboots + len(ctx.reboots)

    @property
    def root(self) -> Path:
        """The top-level document's folder: ExecuteDocument reads nothing outside it."""
        stack = self.options.stack
        return Path(stack[0]).parent if stack else self.document.path.parent.resolve()

    def nested(self, path: Path, phases: list[str], parameters: dict[str, str]) -> DocumentResult:
        """ExecuteDocument: run another document on the same target, guarding depth and cycles."""
        stack = self.options.stack
        identity = str(path.resolve())
        if identity in stack:
            chain = " -> ".join(Path(p).name for p in (*stack[stack.index(identity) :], identity))
            raise ActionFailed(f"ExecuteDocument cycle: {chain}")
        if len(stack) > MAX_NESTING:
            raise ActionFailed(f"ExecuteDocument nests more than {MAX_NESTING} levels deep ({path.name})")
        try:
            doc = load_document(path)
        except ValidationFailed as exc:
            raise ActionFailed(f"ExecuteDocument: {exc.message}") from None
        problems = [message for _, message in parameter_errors(doc, parameters)]
        if problems:
            raise ActionFailed("ExecuteDocument: " + "; ".join(problems))
        return self.run_nested(
            doc, phases=phases, parameters=parameters, target=self.target, monitor=self.monitor,
            label=f"{self.label} > {doc.name}", options=self.options,
        )  # fmt: skip
