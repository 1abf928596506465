"""The example VM recipe end to end: bootable disks built from the image and tested on a real qemu boot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e


def test_debian_vm_builds_boots_and_passes_its_tests(examples: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = kiln("build", str(examples / "recipes/debian-vm.yaml"), "--json", home=home).json()
    artifacts = {a["kind"]: a for a in result["image"]["artifacts"]}
    assert set(artifacts) == {"oci", "qcow2", "raw", "lock"}
    for kind in ("qcow2", "raw"):
        info = subprocess.run(
            ["qemu-img", "info", "--output=json", artifacts[kind]["path"]],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(info.stdout)["format"] == kind
    events = [json.loads(line) for line in Path(result["log_path"]).read_text().splitlines()]
    passed = [e for e in events if e.get("scope") == "test" and e["kind"] == "end"]
    assert passed and passed[-1]["status"] == "passed" and "VM" in passed[-1]["message"]
    vm_steps = {e.get("step") for e in events if e["kind"] == "end" and e.get("status") == "success"}
    assert {"NginxActive", "PageServed", "MachineIdEmptyInImage"} <= vm_steps
    shown = kiln("images", "show", "debian-vm", "--json", home=home).json()
    assert {a["kind"] for a in shown["artifacts"]} == {"oci", "qcow2", "raw", "lock"}
