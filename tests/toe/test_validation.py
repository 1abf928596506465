"""Whole-document validation: every problem at once, with line, step path and an exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.toe.document import load_document

HEAD = "name: t\nschemaVersion: 1.0\n"


def step(body: str, phase: str = "build", name: str = "S") -> str:
    """A document with one step; ``body`` is indented under the step (after name)."""
    lines = "".join(f"        {line}\n" for line in body.strip("\n").splitlines())
    return f"{HEAD}phases:\n  - name: {phase}\n    steps:\n      - name: {name}\n{lines}"


BASH = "action: ExecuteBash\ninputs:\n  commands: [x]\n"


def issues(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as info:
        load_document(path)
    return [(i.line, i.field, i.message) for i in info.value.issues]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: t\nphases:\n  - name: build\n    steps: []\n",
            [
                (1, "schemaVersion", "Field required"),
                (4, "phases[build].steps", "List should have at least 1 item"),
            ],
        ),
        (HEAD + "phases: []\n", [(3, "phases", "List should have at least 1 item")]),
        (
            HEAD + "phases:\n  - name: setup\n    steps:\n      - {name: A, action: Reboot}\n",
            [(3, "phases", "a document needs at least one of the phases build, validate, test")],
        ),
        (
            HEAD + "phases:\n  - name: build\n    steps:\n      - {name: A, action: Reboot}\n"
            "  - name: build\n    steps:\n      - {name: B, action: Reboot}\n",
            [(7, "phases[build]", "phase name used twice")],
        ),
        (
            HEAD + "phases:\n  - name: build\n    steps:\n      - {name: A, action: Reboot}\n"
            "      - {name: A, action: Reboot}\n",
            [(7, "phases[build].steps[A]", "step name used twice in phase")],
        ),
        (
            step("action: Reboot\nonFailur: Continue"),
            [(8, "phases[build].steps[S].onFailur", "Extra inputs are not permitted")],
        ),
        (
            step("action: Reboot\nonFailure: Retry"),
            [(8, "phases[build].steps[S].onFailure", "Input should be 'Abort', 'Continue' or 'Ignore'")],
        ),
        (
            step("action: Reboot\ntimeoutSeconds: 0"),
            [
                (
                    8,
                    "phases[build].steps[S].timeoutSeconds",
                    "timeoutSeconds must be positive, or -1 for no timeout",
                )
            ],
        ),
        (
            step("action: Reboot\ntimeoutSeconds: -2"),
            [
                (
                    8,
                    "phases[build].steps[S].timeoutSeconds",
                    "timeoutSeconds must be positive, or -1 for no timeout",
                )
            ],
        ),
        (
            step("action: Reboot\nmaxAttempts: 0"),
            [(8, "phases[build].steps[S].maxAttempts", "Input should be greater than or equal to 1")],
        ),
        (
            step("name2: x\naction: Reboot"),
            [(7, "phases[build].steps[S].name2", "Extra inputs are not permitted")],
        ),
        (
            step("action: ExecuteBash\ninputs:\n  commands: echo hi"),
            [(9, "phases[build].steps[S].inputs.commands", "Input should be a valid list")],
        ),
        (
            step("action: ExecutePowerShell\ninputs:\n  commands: [x]"),
            [
                (
                    7,
                    "phases[build].steps[S].action",
                    "ExecutePowerShell: Windows action, not supported on Linux images",
                )
            ],
        ),
        (
            step("action: executebash\ninputs:\n  commands: [x]"),
            [
                (
                    7,
                    "phases[build].steps[S].action",
                    "unknown action 'executebash' (did you mean ExecuteBash?)",
                )
            ],
        ),
        (
            step(BASH + "loop:\n  for: {start: 1, end: 5, updateBy: 0}"),
            [(11, "phases[build].steps[S].loop.for", "updateBy must not be 0 (the loop would never end)")],
        ),
        (
            step(BASH + "loop:\n  for: {start: 1, end: 5, updateBy: -1}"),
            [
                (
                    11,
                    "phases[build].steps[S].loop.for",
                    "updateBy -1 moves away from end 5: the loop would never end",
                )
            ],
        ),
        (
            step(BASH + "loop:\n  for: {start: '{{ build.X.outputs.n }}', end: 5, updateBy: 1}"),
            [(11, "phases[build].steps[S].loop.for.start", "loop bounds do not accept chaining expressions")],
        ),
        (
            step(BASH + "loop:\n  forEach: {list: 'a|b', delimiter: '|'}"),
            [
                (
                    11,
                    "phases[build].steps[S].loop.forEach.delimiter",
                    "delimiter must be exactly one of '.', ',', ';', ':', '\\n', '\\t', ' ', '-', '_'",
                )
            ],
        ),
        (
            step(BASH + "loop:\n  forEach: [a]\n  for: {start: 1, end: 2, updateBy: 1}"),
            [(10, "phases[build].steps[S].loop", "a loop needs exactly one of 'for' or 'forEach'")],
        ),
        (
            step(BASH + "if:\n  fileExist: /x"),
            [(10, "phases[build].steps[S].if", "unknown condition operator(s) fileExist")],
        ),
        (
            step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ build.Later.outputs.stdout }}']"),
            [
                (
                    8,
                    "phases[build].steps[S].inputs",
                    "{{ build.Later.outputs.stdout }}: phase 'build' has no step 'Later'",
                )
            ],
        ),
        (
            step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ build.S.outputs.stdout }}']"),
            [
                (
                    8,
                    "phases[build].steps[S].inputs",
                    "{{ build.S.outputs.stdout }}: step build.S runs later; chaining can only use earlier steps",
                )
            ],
        ),
        (
            step("action: ExecuteBash\ninputs:\n  commands: ['echo {{ prepare.S.outputs.stdout }}']"),
            [
                (
                    8,
                    "phases[build].steps[S].inputs",
                    "{{ prepare.S.outputs.stdout }}: the document has no phase 'prepare'",
                )
            ],
        ),
        (
            step("action: ExecuteBash\ninputs:\n  commands: ['{{ aws:ssm:/db/password }}']"),
            [
                (
                    8,
                    "phases[build].steps[S].inputs",
                    "{{ aws:ssm:/db/password }}: Systems Manager parameters are not "
                    "available outside AWS; declare a parameter and pass the value with --parameters",
                )
            ],
        ),
        (
            HEAD + "parameters:\n  - ab: {type: string}\nconstants:\n  - Same: {type: string, value: x}\n"
            "phases:\n  - name: build\n    steps:\n      - {name: A, action: Reboot}\n",
            [(4, "parameters[0]", "name 'ab' must be 3-128 characters of A-Z a-z 0-9 - _")],
        ),
        (
            HEAD + "parameters:\n  - Same: {type: string}\nconstants:\n  - Same: {type: string, value: x}\n"
            "phases:\n  - name: build\n    steps:\n      - {name: A, action: Reboot}\n",
            [(4, "parameters[Same]", "name already declared")],
        ),
        (
            HEAD + "parameters:\n  - Size: {type: number}\nphases:\n  - name: build\n    steps:\n"
            "      - {name: A, action: Reboot}\n",
            [(4, "parameters[0].Size.type", "Input should be 'string'")],
        ),
    ],
)
def test_invalid_documents(tmp_path: Path, text: str, expected: list[tuple[int, str, str]]) -> None:
    assert issues(tmp_path, text) == expected


def test_test_phase_cannot_chain_from_build(tmp_path: Path) -> None:
    text = (
        HEAD + "phases:\n  - name: build\n    steps:\n      - name: V\n        action: ExecuteBash\n"
        "        inputs: {commands: [uname -r]}\n  - name: test\n    steps:\n      - name: T\n"
        "        action: ExecuteBash\n        inputs: {commands: ['echo {{ build.V.outputs.stdout }}']}\n"
    )
    ((line, field, message),) = issues(tmp_path, text)
    assert (line, field) == (13, "phases[test].steps[T].inputs")
    assert "between the build stage (build, validate) and the test stage is not possible" in message


def test_many_problems_reported_together(tmp_path: Path) -> None:
    text = (
        "schemaVersion: 2\nphases:\n  - name: build\n    steps:\n"
        "      - {name: A, action: Nope}\n      - {name: B, action: CreateFile, inputs: [{path: /x, permissions: rw}]}\n"
        "      - {name: C, action: ExecuteBash, onFailure: Never, inputs: {commands: [x]}}\n"
    )
    found = issues(tmp_path, text)
    assert [f for _, f, _ in found] == [
        "schemaVersion", "phases[build].steps[A].action", "phases[build].steps[B].inputs[0].permissions",
        "phases[build].steps[C].onFailure",
    ]  # fmt: skip


def test_quirks_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "quirks.yaml"
    path.write_text(
        "name: quirks\nschemaVersion: 1\nparameters:\n  - Target:\n      type: string\n      default: /opt\n"
        "phases:\n  - name: build\n    steps:\n      - name: A\n        action: ExecuteBash\n"
        "        onFailure: continue\n        inputs:\n          commands:\n"
        "            - echo {{ Target }} ${AWS::Region} ${!Literal}\n"
        "      - name: B\n        action: CreateFolder\n        inputs:\n          - path: {{ Target }}\n"
        "            permissions: 0755\n  - name: container-host-test\n    steps:\n"
        "      - {name: C, action: Reboot}\n"
    )
    doc = load_document(path)
    build = doc.phases[0]
    assert build.steps[0].on_failure == "Continue"
    assert build.steps[0].inputs == {"commands": ["echo {{ Target }} ${AWS::Region} ${!Literal}"]}
    assert build.steps[1].inputs[0]["path"] == "{{ Target }}"
    assert doc.phase_names == ["build", "container-host-test"]


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nphases:\n  - name: build\n   steps: [\n")
    with pytest.raises(ValidationFailed) as info:
        load_document(path)
    (issue,) = info.value.issues
    assert issue.line is not None and "invalid YAML" in issue.message
