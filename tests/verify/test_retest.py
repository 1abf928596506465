"""``kiln test``'s planning: the recorded lock data, typed, turned into what runs where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiln.errors import KilnError, ValidationFailed
from kiln.verify.retest import KeptDocument, RetestInputs, UnknownInstance, plan_retest

TESTED = """\
name: {name}
schemaVersion: 1.0
phases:
  - name: {phase}
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands: ['true']
"""


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "components").mkdir(parents=True)
    (out / "components/component-00.yaml").write_text(TESTED.format(name="web", phase="test"))
    (out / "components/component-01.yaml").write_text(TESTED.format(name="setup", phase="build"))
    (out / "components/test-00.yaml").write_text(TESTED.format(name="smoke", phase="test"))
    return out


def lock(**extra: Any) -> dict[str, Any]:
    """Lock data as a build records it (kiln.build.orchestrate.lock_data), with keys re-tests ignore."""
    kept = [
        KeptDocument(name="web", digest="sha256:" + "a" * 64, parameters={"port": "80"},
                     phases=["build", "test"], document="components/component-00.yaml"),
        KeptDocument(name="setup", digest="sha256:" + "b" * 64, phases=["build"],
                     document="components/component-01.yaml"),
        KeptDocument(role="test", name="smoke", digest="sha256:" + "c" * 64, phases=["test"],
                     document="components/test-00.yaml"),
    ]  # fmt: skip
    return {
        "recipe": {"path": "/r.yaml", "digest": "sha256:" + "d" * 64},
        "parent": {"image": "debian:bookworm"},
        "layers": ["k1"],
        "components": [k.model_dump(mode="json") for k in kept],
        "working_directory": "/srv",
        **extra,
    }


def test_kept_documents_with_a_test_phase_run_as_the_build_tested(output_dir: Path) -> None:
    artifacts = {"oci": output_dir / "oci", "qcow2": output_dir / "disk.qcow2"}
    inputs = RetestInputs.from_lock("img@1.0.0/1", lock(test_instances=["container", "vm"], boot="bios"))
    plan = plan_retest("img@1.0.0/1", artifacts, inputs)
    assert [(t.label, t.parameters) for t in plan.tests] == [("web", {"port": "80"}), ("smoke", {})]
    assert plan.kinds == ["container", "vm"]
    assert (plan.layout, plan.disk, plan.boot, plan.workdir) == (
        output_dir / "oci", output_dir / "disk.qcow2", "bios", "/srv",
    )  # fmt: skip


def test_defaults_and_extra_documents(output_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(TESTED.format(name="extra", phase="test"))
    inputs = RetestInputs.from_lock("img", {"components": lock()["components"]})
    plan = plan_retest("img", {"oci": output_dir / "oci"}, inputs, documents=[extra])
    assert [t.label for t in plan.tests] == ["web", "smoke", "extra"]
    assert (plan.kinds, plan.boot, plan.workdir) == (["container"], "uefi", "/tmp")


def test_problems_are_reported_before_anything_runs(output_dir: Path, tmp_path: Path) -> None:
    inputs = RetestInputs.from_lock("img", lock())
    with pytest.raises(UnknownInstance, match="unknown instance kind 'docker'") as unknown:
        plan_retest("img", {"oci": output_dir / "oci"}, inputs, instance="docker")
    assert unknown.value.exit_code == 2
    with pytest.raises(KilnError, match="no qcow2 or raw disk"):
        plan_retest("img", {"oci": output_dir / "oci"}, inputs, instance="vm")
    with pytest.raises(KilnError, match="no test phases"):
        plan_retest("img", {}, RetestInputs.from_lock("img", None))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nschemaVersion: 1.0\nphases: []\n")
    with pytest.raises(ValidationFailed) as invalid:
        plan_retest("img", {"oci": output_dir / "oci"}, inputs, documents=[bad, tmp_path / "missing.yaml"])
    assert len(invalid.value.issues) == 2


def test_unreadable_lock_data_is_a_clear_error() -> None:
    with pytest.raises(KilnError, match="img: its recorded lock data cannot be read"):
        RetestInputs.from_lock("img", {"test_instances": ["lxc"]})
