"""Document semantics in a real Debian root: loops, retries, timeouts, chaining, conditions, reboots,
nested documents and status propagation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from tests.toe.conftest import WriteDoc, run

pytestmark = pytest.mark.e2e


def steps(result: object) -> dict[str, object]:
    return {s.name: s for s in result.steps()}  # type: ignore[attr-defined]


def test_loops_and_output_joining(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: loops
schemaVersion: 1.0
constants:
  - Items:
      type: string
      value: "red;green;blue"
phases:
  - name: build
    steps:
      - name: Range
        action: ExecuteBash
        loop:
          name: counter
          for: {start: 10, end: 0, updateBy: -5}
        inputs:
          commands: ['echo "{{ loop.index }}:{{ counter.value }}"']
      - name: List
        action: ExecuteBash
        loop:
          forEach: [alpha, "beta gamma"]
        inputs:
          commands: ['echo "{{ loop.value }}" >> /tmp-list', 'echo "{{ loop.value }}"']
      - name: Delimited
        action: CreateFile
        loop:
          forEach: {list: "{{ Items }}", delimiter: ";"}
        inputs:
          - path: '/colors/{{ loop.index }}-{{ loop.value }}'
            content: '{{ loop.value }}'
      - name: FromOutput
        action: ExecuteBash
        loop:
          forEach: {list: "{{ build.Range.outputs.stdout }}", delimiter: "\\n"}
        inputs:
          commands: ['echo "got {{ loop.value }}"']
"""
    )
    result = run(doc, rootfs)
    assert result.status == "success", result.failure_message
    s = steps(result)
    assert s["Range"].outputs == {"stdout": "0:10\n1:5\n2:0"}  # type: ignore[attr-defined]
    assert s["List"].outputs == {"stdout": "alpha\nbeta gamma"}  # type: ignore[attr-defined]
    assert (rootfs / "tmp-list").read_text() == "alpha\nbeta gamma\n"
    assert sorted(p.name for p in (rootfs / "colors").iterdir()) == ["0-red", "1-green", "2-blue"]
    assert s["FromOutput"].outputs == {"stdout": "got 0:10\ngot 1:5\ngot 2:0"}  # type: ignore[attr-defined]


def test_loop_failures_abort_versus_continue(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: loopfail
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Continues
        action: ExecuteBash
        onFailure: Continue
        loop:
          forEach: [a, b, c, d]
        inputs:
          commands: ['echo {{ loop.value }} >> /ran-continue', '[ "{{ loop.value }}" != b ] && [ "{{ loop.value }}" != d ]']
      - name: Aborts
        action: ExecuteBash
        loop:
          forEach: [a, b, c]
        inputs:
          commands: ['echo {{ loop.value }} >> /ran-abort', '[ "{{ loop.value }}" != b ]']
"""
    )
    result = run(doc, rootfs)
    s = steps(result)
    # "If onFailure is set to Continue, AWSTOE exits the loop" (tests/toe/test_awstoe_conformance.py)
    assert (rootfs / "ran-continue").read_text().split() == ["a", "b"]
    assert "loop iteration 1 ('b') failed" in (s["Continues"].failure_message or "")  # type: ignore[attr-defined]
    assert (rootfs / "ran-abort").read_text().split() == ["a", "b"]
    assert result.status == "failed"


def test_retries_rerun_the_whole_step(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: retries
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Flaky
        action: ExecuteBash
        maxAttempts: 3
        inputs:
          commands:
            - n=$(cat /count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /count
            - '[ "$n" -ge 3 ] || { echo "attempt $n fails" >&2; exit 9; }'
            - echo "ok on $n"
      - name: NeverWorks
        action: ExecuteBash
        maxAttempts: 2
        onFailure: Ignore
        inputs:
          commands: ['exit 4']
"""
    )
    monitor = ListMonitor()
    result = run(doc, rootfs, monitor=monitor)
    s = steps(result)
    assert s["Flaky"].status == "success" and s["Flaky"].attempts == 3  # type: ignore[attr-defined]
    assert s["Flaky"].outputs == {"stdout": "ok on 3"}  # type: ignore[attr-defined]
    assert s["NeverWorks"].status == "ignored-failure"  # type: ignore[attr-defined]
    assert "attempt 2/2" in (s["NeverWorks"].failure_message or "")  # type: ignore[attr-defined]
    assert result.status == "success-with-ignored-failure"
    assert sum(1 for e in monitor.events if e.kind == "warning" and "retrying" in e.message) == 3


def test_timeout_kills_the_process_tree(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: timeouts
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Slow
        action: ExecuteBash
        timeoutSeconds: 1
        onFailure: Continue
        inputs:
          commands: ['(sleep 3; touch /survivor) &', 'nohup sh -c "sleep 3; touch /nohup-survivor" &', 'sleep 20']
      - name: Unlimited
        action: ExecuteBash
        timeoutSeconds: -1
        inputs:
          commands: ['sleep 1.5; echo done']
"""
    )
    started = time.monotonic()
    result = run(doc, rootfs)
    s = steps(result)
    assert "timed out after 1s" in (s["Slow"].failure_message or "")  # type: ignore[attr-defined]
    assert s["Unlimited"].status == "success"  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not (rootfs / "survivor").exists()
    assert not (rootfs / "nohup-survivor").exists()


def test_chaining_across_calls_and_indexed_inputs(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: chaining
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Files
        action: CreateFile
        inputs:
          - path: /opt/one.txt
            content: one
          - path: /opt/two.txt
            content: "two\\n"
      - name: Version
        action: ExecuteBash
        inputs:
          commands: ['cut -d. -f1 /etc/debian_version']
      - name: Use
        action: ExecuteBash
        inputs:
          commands:
            - 'cat {{ build.Files.inputs[1].path }}'
            - 'echo "major={{ build.Version.outputs.stdout }}"'
  - name: validate
    steps:
      - name: Check
        action: Assert
        inputs:
          stringEquals: '12'
          value: '{{ build.Version.outputs.stdout }}'
"""
    )
    build = run(doc, rootfs, phases=("build",))
    assert steps(build)["Use"].outputs == {"stdout": "two\nmajor=12"}  # type: ignore[attr-defined]
    assert {e["expression"] for e in build.chaining} == {
        "{{ build.Files.inputs[1].path }}", "{{ build.Version.outputs.stdout }}",
    }  # fmt: skip
    from kiln.toe.runner import RootfsTarget, run_document

    with RootfsTarget(rootfs) as target:
        validate = run_document(doc, phases=["validate"], parameters={}, target=target, monitor=ListMonitor(),
                                chain=build.chain)  # fmt: skip
    assert validate.status == "success", validate.failure_message
    alone = run(doc, rootfs, phases=("validate",))  # without the build's chain state
    assert alone.status == "failed" and "has not run" in (alone.failure_message or "")


def test_conditions_then_else_and_files_in_root(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: conditions
schemaVersion: 1.0
parameters:
  - Flavour:
      type: string
      default: debian
phases:
  - name: build
    steps:
      - name: OnlyDebian
        action: ExecuteBash
        if:
          and:
            - fileExists: /etc/debian_version
            - binaryExists: apt-get
            - stringEquals: DEBIAN
              value: '{{ Flavour }}'
        inputs:
          commands: ['echo debian']
      - name: OnlyRpm
        action: ExecuteBash
        if:
          binaryExists: dnf
        inputs:
          commands: ['touch /rpm']
      - name: Inverted
        action: ExecuteBash
        if:
          folderExists: /etc/apt
          then: Skip
        inputs:
          commands: ['touch /inverted']
      - name: Guard
        action: ExecuteBash
        if:
          not:
            fileExists: /etc/os-release
          then: Abort
        inputs:
          commands: ['echo guarded']
"""
    )
    result = run(doc, rootfs)
    s = steps(result)
    assert [(n, r.status) for n, r in s.items()] == [  # type: ignore[attr-defined]
        ("OnlyDebian", "success"), ("OnlyRpm", "skipped"), ("Inverted", "skipped"), ("Guard", "success"),
    ]  # fmt: skip
    assert result.status == "success"
    assert not (rootfs / "rpm").exists() and not (rootfs / "inverted").exists()
    aborted = run(doc, rootfs, parameters={"Flavour": "x"})
    assert steps(aborted)["OnlyDebian"].status == "skipped"  # type: ignore[attr-defined]
    (rootfs / "etc/os-release").unlink()
    (rootfs / "usr/lib/os-release").unlink()
    failed = run(doc, rootfs)
    assert failed.status == "failed"
    assert "aborted because condition not(fileExists" in (failed.failure_message or "")


def test_exit_194_reruns_once_and_reboot_is_recorded(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: reboots
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: NeedsReboot
        action: ExecuteBash
        inputs:
          commands:
            - 'if [ ! -e /rebooted-once ]; then touch /rebooted-once; echo "asking"; exit 194; fi'
            - echo "after reboot"
      - name: Reboot
        action: Reboot
        inputs:
          delaySeconds: 5
      - name: AlwaysReboot
        action: ExecuteBash
        onFailure: Continue
        inputs:
          commands: ['exit 194']
"""
    )
    result = run(doc, rootfs)
    s = steps(result)
    assert s["NeedsReboot"].status == "success" and s["NeedsReboot"].reboots == 1  # type: ignore[attr-defined]
    assert s["NeedsReboot"].outputs == {"stdout": "after reboot"}  # type: ignore[attr-defined]
    assert s["Reboot"].status == "success" and s["Reboot"].reboots == 1  # type: ignore[attr-defined]
    assert s["AlwaysReboot"].status == "failed" and s["AlwaysReboot"].exit_code == 194  # type: ignore[attr-defined]


def test_execute_document_nesting_and_cycles(tmp_path: Path, rootfs: Path, write_doc: WriteDoc) -> None:
    (tmp_path / "inner.yaml").write_text(
        "name: inner\nschemaVersion: 1.0\nparameters:\n  - Who:\n      type: string\nphases:\n"
        "  - name: build\n    steps:\n      - name: Hi\n        action: ExecuteBash\n"
        "        inputs:\n          commands: ['echo hi {{ Who }} >> /nested']\n"
    )
    for name, target in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Call\n"
            f"        action: ExecuteDocument\n        inputs:\n          document: {target}.yaml\n"
        )
    for level in range(5):
        nxt = f"document: deep{level + 1}.yaml" if level < 4 else "document: inner.yaml"
        (tmp_path / f"deep{level}.yaml").write_text(
            f"name: deep{level}\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Call\n"
            f"        action: ExecuteDocument\n        inputs:\n          {nxt}\n"
            "          parameters: [{name: Who, value: deep}]\n"
        )
    outer = write_doc(
        "name: outer\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: Call\n"
        "        action: ExecuteDocument\n        inputs:\n          document: inner.yaml\n"
        "          phases: build\n          parameters:\n            - name: Who\n              value: outer\n"
    )
    result = run(outer, rootfs)
    assert result.status == "success", result.failure_message
    assert (rootfs / "nested").read_text() == "hi outer\n"
    assert steps(result)["Call"].outputs["status"] == "success"  # type: ignore[attr-defined]
    from kiln.toe.document import load_document

    cycle = run(load_document(tmp_path / "a.yaml"), rootfs)
    assert cycle.status == "failed" and "ExecuteDocument cycle: a.yaml -> b.yaml -> a.yaml" in (
        cycle.failure_message or ""
    )
    deep = run(load_document(tmp_path / "deep0.yaml"), rootfs)
    assert deep.status == "failed" and "nests more than 3 levels" in (deep.failure_message or "")
    missing = run(load_document(tmp_path / "deep4.yaml"), rootfs)
    assert missing.status == "success"


def test_phase_selection_follows_document_order(write_doc: WriteDoc, rootfs: Path) -> None:
    doc = write_doc(
        """\
name: order
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - {name: B, action: ExecuteBash, inputs: {commands: ['echo build >> /order']}}
  - name: container-host-test
    steps:
      - {name: C, action: ExecuteBash, inputs: {commands: ['echo extra >> /order']}}
  - name: validate
    steps:
      - {name: V, action: ExecuteBash, inputs: {commands: ['echo validate >> /order']}}
"""
    )
    result = run(doc, rootfs, phases=("validate", "test", "build"))
    assert [p.name for p in result.phases] == ["build", "validate"]
    assert (rootfs / "order").read_text().split() == ["build", "validate"]
