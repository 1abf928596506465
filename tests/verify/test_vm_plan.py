"""Resolving test phases for a guest, before anything boots (fast: no qemu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.settings import Settings
from kiln.toe.results import FAILED, SKIPPED, SUCCESS
from kiln.verify.accel import choose_accel
from kiln.verify.guest_plan import agent_files, collect_results, plan_tests, stage_plan

GOOD = """\
name: checks
schemaVersion: 1.0
parameters:
  - Page:
      type: string
      default: index.html
constants:
  - Root:
      type: string
      value: /var/www/html
phases:
  - name: build
    steps:
      - name: NotForTheGuest
        action: CreateFile
        inputs: [{path: /x, content: y}]
  - name: test
    steps:
      - name: PageThere
        action: ExecuteBash
        timeoutSeconds: 30
        onFailure: Continue
        maxAttempts: 2
        inputs:
          commands: ["test -s {{ Root }}/{{ Page }}", "echo it's there"]
      - name: Binary
        action: ExecuteBinary
        inputs: {path: /usr/bin/printf, arguments: ["%s\\\\n", "a b"]}
"""

BAD = """\
name: bad
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: WriteFile
        action: CreateFile
        inputs: [{path: /x, content: y}]
      - name: Chained
        action: ExecuteBash
        inputs:
          commands: ["echo {{ test.WriteFile.outputs.stdout }}"]
      - name: Looped
        action: ExecuteBash
        loop: {forEach: [a, b]}
        inputs:
          commands: ["echo {{ loop.value }}"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plan_resolves_variables_and_keeps_awstoe_settings(tmp_path: Path) -> None:
    doc = write(tmp_path, "good.yaml", GOOD)
    plan = plan_tests([("checks", doc)], {"checks": {"Page": "hello.html"}})
    assert plan.labels == ["checks"]
    first, second = plan.steps
    assert first.id == "0001" and first.script == "test -s /var/www/html/hello.html\necho it's there\n"
    assert (first.timeout, first.on_failure, first.max_attempts) == (30, "Continue", 2)
    assert second.script == "exec /usr/bin/printf '%s\\n' 'a b'\n"
    assert "ON_FAILURE=Continue\n" in first.meta() and "STEP=PageThere\n" in first.meta()


def test_documents_without_a_test_phase_are_left_out(tmp_path: Path) -> None:
    doc = write(tmp_path, "build-only.yaml", GOOD.split("  - name: test")[0])
    assert plan_tests([("b", doc)]).steps == []


def test_steps_a_guest_cannot_run_fail_before_boot_with_lines(tmp_path: Path) -> None:
    doc = write(tmp_path, "bad.yaml", BAD)
    with pytest.raises(ValidationFailed) as caught:
        plan_tests([("bad", doc)])
    text = str(caught.value)
    assert f"{doc}:6: phases[test].steps[WriteFile].action: CreateFile cannot run in a VM test phase" in text
    assert f"{doc}:9: phases[test].steps[Chained].inputs: {{{{ test.WriteFile.outputs.stdout }}}}" in text
    assert f"{doc}:13: phases[test].steps[Looped]: loop and if are not supported" in text


def test_unknown_parameter_is_reported(tmp_path: Path) -> None:
    doc = write(tmp_path, "good.yaml", GOOD)
    with pytest.raises(ValidationFailed, match="unknown parameter 'Pag'"):
        plan_tests([("checks", doc)], {"checks": {"Pag": "x"}})


def test_results_from_the_test_disk(tmp_path: Path) -> None:
    plan = plan_tests([("checks", write(tmp_path, "good.yaml", GOOD))])
    stage_plan(plan, tmp_path / "disk", "n0nce")
    assert (tmp_path / "disk/plan/0001/run").read_text() == plan.steps[0].script
    assert (tmp_path / "disk/nonce").read_text() == "n0nce\n"
    results = tmp_path / "disk/results"
    step = results / "0001"
    step.mkdir()
    for name, value in {"status": "failed", "exit_code": "1", "attempts": "2", "times": "10.5 12.0",
                        "message": "exited with code 1", "stdout": "", "stderr": "no page\n"}.items():  # fmt: skip
        (step / name).write_text(value + "\n")
    [doc] = collect_results(plan, results, fallback_message="qemu died")
    first, second = doc.steps()
    assert doc.status == FAILED and first.status == FAILED and first.attempts == 2
    assert first.failure_message == "exited with code 1\nno page"
    assert second.status == FAILED and second.failure_message == "qemu died"  # the one that was running
    [never] = collect_results(plan, None, fallback_message="timed out")
    assert [s.status for s in never.steps()] == [FAILED, SKIPPED]


def test_guest_files_are_packaged() -> None:
    files = agent_files()
    assert (
        "Type=exec" in files["kiln-test.service"]
        and "SuccessAction=poweroff-force" in files["kiln-test.service"]
    )
    assert files["agent.sh"].startswith("#!/bin/bash")


def test_accelerator_choice() -> None:
    assert Settings.from_env({"KILN_ACCEL": "TCG"}).accel == "tcg"
    assert Settings.from_env({"KILN_ACCEL": "bogus"}).accel == "auto"
    assert choose_accel("tcg").name == "tcg"
    assert choose_accel("kvm").qemu_args()[:2] == ["-accel", "kvm"]
    probed = choose_accel()  # real probe: on this kind of host /dev/kvm exists but KVM aborts
    assert probed.name in ("kvm", "tcg") and probed.reason
    assert SUCCESS == "success"
