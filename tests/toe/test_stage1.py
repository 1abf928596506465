"""The engine's core: validation with positions, ExecuteBash/CreateFile in a real root, statuses, events."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.monitor import ListMonitor
from kiln.toe.document import check_parameters, load_document
from tests.toe.conftest import WriteDoc, run

HELLO = """\
name: hello
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hi
  - Target:
      type: string
phases:
  - name: build
    steps:
      - name: Say
        action: ExecuteBash
        inputs:
          commands:
            - echo "{{ Greeting }} from $(cat /etc/debian_version)"
      - name: Write
        action: CreateFile
        inputs:
          - path: '{{ Target }}'
            content: '{{ build.Say.outputs.stdout }}'
  - name: validate
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands: ['cat {{ Target }}']
"""


def test_validation_reports_every_issue_with_step_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "schemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
        "      - name: InstallNginx\n        action: ExecuteBash\n        inputs:\n          commands: 7\n"
        "      - name: Win\n        action: SetRegistry\n        inputs: []\n"
        "      - name: Typo\n        action: CreateFil\n"
    )
    with pytest.raises(ValidationFailed) as info:
        load_document(path)
    got = {(i.line, i.field): i.message for i in info.value.issues}
    assert got[(8, "phases[build].steps[InstallNginx].inputs.commands")] == "Input should be a valid list"
    assert got[(10, "phases[build].steps[Win].action")] == (
        "SetRegistry: Windows action, not supported on Linux images"
    )
    assert "unknown action 'CreateFil'" in got[(13, "phases[build].steps[Typo].action")]
    assert info.value.exit_code == 2


def test_document_metadata_and_parameters(write_doc: WriteDoc) -> None:
    doc = write_doc(HELLO)
    assert doc.name == "hello"
    assert doc.phase_names == ["build", "validate"]
    assert doc.digest.startswith("sha256:") and len(doc.digest) == 71
    assert [(p.name, p.default) for p in doc.parameters] == [("Greeting", "hi"), ("Target", None)]
    assert check_parameters(doc, {"Target": "/x"}) == []
    problems = check_parameters(doc, {"Greting": "x"})
    assert any("unknown parameter 'Greting'" in p and "Greeting" in p for p in problems)
    assert any("'Target' has no default" in p for p in problems)


@pytest.mark.e2e
def test_bash_create_file_and_chaining_in_debian_root(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(HELLO)
    monitor = ListMonitor()
    result = run(doc, rootfs, phases=("build",), parameters={"Target": "/etc/hello.txt"}, monitor=monitor)
    assert result.status == "success", result.failure_message
    assert (rootfs / "etc/hello.txt").read_text().startswith("hi from 12")
    assert result.chain["build"]["Say"]["outputs"]["stdout"].startswith("hi from 12")
    outputs = [e for e in monitor.events if e.kind == "output"]
    assert outputs and outputs[0].phase == "build" and outputs[0].step == "Say"
    ends = [(e.scope, e.step, e.status) for e in monitor.events if e.kind == "end"]
    assert ends == [("step", "Say", "success"), ("step", "Write", "success"), ("phase", None, "success")]
    # A later call for the validate phase resolves chaining through the cached chain state.
    later = run(doc, rootfs, phases=("validate",), parameters={"Target": "/etc/hello.txt"})
    assert later.status == "success"
    assert later.phases[0].steps[0].outputs["stdout"].startswith("hi from 12")


@pytest.mark.e2e
def test_on_failure_statuses_and_timeout_kills_tree(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: statuses
schemaVersion: "1.0"
phases:
  - name: build
    steps:
      - name: Ignored
        action: ExecuteBash
        onFailure: Ignore
        inputs: {commands: ['exit 3']}
      - name: Slow
        action: ExecuteBash
        timeoutSeconds: 1
        onFailure: Continue
        inputs: {commands: ['(sleep 30; touch /survivor) &', 'sleep 30']}
      - name: After
        action: ExecuteBash
        inputs: {commands: ['echo still running']}
      - name: Abort
        action: ExecuteBash
        inputs: {commands: ['echo doomed', 'exit 5']}
      - name: Never
        action: ExecuteBash
        inputs: {commands: ['touch /never']}
"""
    )
    result = run(doc, rootfs)
    statuses = [(s.name, s.status) for s in result.steps()]
    assert statuses == [
        ("Ignored", "ignored-failure"), ("Slow", "failed"), ("After", "success"), ("Abort", "failed"),
    ]  # fmt: skip
    assert result.status == "failed"
    slow = result.steps()[1]
    assert "timed out after 1s" in (slow.failure_message or "")
    abort = result.steps()[3]
    assert abort.exit_code == 5
    assert abort.failure_message is not None
    assert "document statuses, phase build, step Abort, attempt 1/1" in abort.failure_message
    assert "doomed" in abort.failure_message
    assert not (rootfs / "never").exists()
    assert not (rootfs / "survivor").exists()
