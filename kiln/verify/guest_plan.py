"""Test phases resolved on the host into scripts a guest can run without Kiln, and their results read back.

Each document's ``test`` phase is validated with :mod:`kiln.toe`, its variables substituted here, and
every step turned into one bash script plus a small ``meta`` file (document, onFailure, timeout,
attempts). The scripts, the guest agent and a nonce go onto a small ext4 "test disk"; the guest writes
results beside them. Steps that need Kiln's engine inside the guest (file actions, loops, ``if``,
chaining) are rejected before anything boots, with file:line.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.toe.document import Document, check_parameters, load_document
from kiln.toe.guest_steps import guest_step_problems
from kiln.toe.results import (
    FAILED,
    SKIPPED,
    SUCCESS,
    DocumentResult,
    PhaseResult,
    StepResult,
    combine,
)
from kiln.toe.variables import expressions, strings_in, substitute, variables_resolver

TEST_PHASE = "test"


@dataclass(frozen=True)
class GuestStep:
    id: str  # "0001": directory name on the test disk, in execution order
    document: int
    name: str
    action: str
    inputs: Any
    on_failure: str
    timeout: int  # seconds, 0 = none
    max_attempts: int
    script: str

    def meta(self) -> str:
        return "".join(
            f"{key}={shlex.quote(str(value))}\n"
            for key, value in (
                ("DOC_INDEX", self.document), ("STEP", self.name), ("ON_FAILURE", self.on_failure),
                ("TIMEOUT", self.timeout), ("MAX_ATTEMPTS", self.max_attempts),
            )
        )  # fmt: skip


@dataclass
class GuestPlan:
    labels: list[str]
    documents: list[Document]
    steps: list[GuestStep]


def plan_tests(
    documents: Sequence[tuple[str, Path]], parameters: Mapping[str, Mapping[str, str]] | None = None
) -> GuestPlan:
    """Validate and resolve the ``test`` phase of every document; all problems are reported at once."""
    issues: list[Issue] = []
    plan = GuestPlan([], [], [])
    for label, path in documents:
        doc = load_document(path)
        values = dict((parameters or {}).get(label, {}))
        for message in check_parameters(doc, values):
            issues.append(Issue(str(path), None, None, "parameters", message))
        phase = doc.phase(TEST_PHASE)
        if phase is None:
            continue
        index = len(plan.documents)
        plan.labels.append(label)
        plan.documents.append(doc)
        resolve = variables_resolver(doc.variables(values))
        for step in phase.steps:
            where = f"phases[{TEST_PHASE}].steps[{step.name}]"

            def problem(
                message: str, field: str = "", *, _file: str = str(path), _where: str = where,
                _line: int | None = step.line,
            ) -> None:  # fmt: skip
                issues.append(Issue(_file, _line, None, f"{_where}{field}", message))

            refused = guest_step_problems(step)
            for field, message in refused:
                problem(message, field)
            if refused:
                continue
            try:
                inputs = substitute(step.inputs, resolve)
            except KilnError as exc:
                problem(exc.message, ".inputs")
                continue
            left = [e for s in strings_in(inputs) for e in expressions(s)]
            if left:
                problem(f"{{{{ {left[0]} }}}} cannot be resolved before boot (chaining and unknown "
                        "variables are not supported in VM test phases)", ".inputs")  # fmt: skip
                continue
            parsed = step.action_class().parse(inputs)
            if step.action == "ExecuteBash":
                script = "\n".join(parsed.commands) + "\n"
            else:
                script = "exec " + shlex.join([parsed.path, *parsed.arguments]) + "\n"
            plan.steps.append(GuestStep(
                id=f"{len(plan.steps) + 1:04d}", document=index, name=step.name, action=step.action,
                inputs=inputs, on_failure=step.on_failure, max_attempts=step.max_attempts,
                timeout=max(step.timeout_seconds, 0), script=script,
            ))  # fmt: skip
    if issues:
        raise ValidationFailed(issues)
    return plan


def agent_files() -> dict[str, str]:
    """The guest agent and the systemd unit that starts it (package data)."""
    folder = resources.files("kiln.verify") / "guest"
    return {name: (folder / name).read_text() for name in ("agent.sh", "kiln-test.service")}


def stage_plan(plan: GuestPlan, folder: Path, nonce: str) -> None:
    """Lay the test disk's contents out in ``folder``."""
    (folder / "plan").mkdir(parents=True)
    (folder / "results").mkdir()
    (folder / "nonce").write_text(nonce + "\n")
    (folder / "agent.sh").write_text(agent_files()["agent.sh"])
    for step in plan.steps:
        d = folder / "plan" / step.id
        d.mkdir()
        (d / "meta").write_text(step.meta())
        (d / "run").write_text(step.script)


def _read(folder: Path, name: str) -> str:
    try:
        return (folder / name).read_text(errors="replace")
    except OSError:
        return ""


def collect_results(plan: GuestPlan, results: Path | None, *, fallback_message: str) -> list[DocumentResult]:
    """Per-document results from the test disk's ``results/`` folder (``None``: the guest never wrote it).

    A step without results did not run: it is ``failed`` with ``fallback_message`` when it was the one
    running, else ``skipped``.
    """
    now = time.time()
    out: list[DocumentResult] = []
    blamed = False
    for index, doc in enumerate(plan.documents):
        steps: list[StepResult] = []
        for step in (s for s in plan.steps if s.document == index):
            folder = results / step.id if results is not None else None
            status = _read(folder, "status").strip() if folder else ""
            times = _read(folder, "times").split() if folder else []
            start, end = (float(times[0]), float(times[1])) if len(times) == 2 else (now, now)
            result = StepResult(
                name=step.name, action=step.action, status=status or SKIPPED, on_failure=step.on_failure,
                max_attempts=step.max_attempts, timeout_seconds=step.timeout or -1, start=start, end=end,
                inputs=step.inputs,
            )  # fmt: skip
            if folder is not None and status:
                code = _read(folder, "exit_code").strip()
                result.exit_code = int(code) if code.lstrip("-").isdigit() else None
                result.attempts = int(_read(folder, "attempts").strip() or 0)
                result.outputs = {"stdout": _read(folder, "stdout").rstrip("\n")}
                message = _read(folder, "message").strip()
                if message and status != SUCCESS:
                    lines = (_read(folder, "stdout") + _read(folder, "stderr")).splitlines()
                    tail = "\n".join([line for line in lines if line.strip()][-20:])
                    result.failure_message = f"{message}\n{tail}".strip()
            elif not blamed:
                result.status, result.failure_message, blamed = FAILED, fallback_message, True
            steps.append(result)
        statuses = [s.status for s in steps if s.status != SKIPPED] or [SUCCESS]
        status = combine(statuses)
        first, last = (steps[0].start, steps[-1].end) if steps else (now, now)
        failure = next((f"{s.name}: {s.failure_message}" for s in steps if s.status == FAILED), None)
        phase = PhaseResult(TEST_PHASE, status, first, last, steps, failure)
        out.append(DocumentResult(
            name=plan.labels[index], path=str(doc.path), status=status, start=first, end=last,
            phases=[phase], failure_message=failure, description=doc.description,
        ))  # fmt: skip
    return out
