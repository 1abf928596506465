"""The host target, UpdateOS command generation and the image: target's errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kiln.monitor import ListMonitor
from kiln.toe.actions.system import _apt_script, _rpm_script
from kiln.toe.runner import HostTarget, run_document
from tests.toe.conftest import WriteDoc


def test_host_target_runs_on_this_machine(write_doc: WriteDoc, tmp_path: Path) -> None:
    out = tmp_path / "host-out"
    doc = write_doc(
        f"""\
name: onhost
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Bash
        action: ExecuteBash
        inputs:
          commands: ['mkdir -p {out}', 'echo "$HOME" > {out}/home']
      - name: File
        action: CreateFile
        inputs:
          - path: {out}/file
            content: from a file action
"""
    )
    before = set(Path("/tmp").glob("kiln-toe-*"))
    with HostTarget() as target:
        result = run_document(doc, phases=["build"], parameters={}, target=target, monitor=ListMonitor())
    assert result.status == "success", result.failure_message
    assert (out / "home").read_text() == "/root\n"
    assert (out / "file").read_text() == "from a file action"
    assert set(Path("/tmp").glob("kiln-toe-*")) <= before  # staged scripts are removed


def test_update_os_commands() -> None:
    apt = _apt_script(["openssl", "curl"], ["curl"])
    assert "apt-mark hold $held" in apt and "apt-mark unhold $held" in apt
    assert "apt-get install -y --only-upgrade" in apt and apt.rstrip().endswith("openssl")
    everything = _apt_script([], [])
    assert "apt-get upgrade -y --with-new-pkgs" in everything and "hold" not in everything
    assert _rpm_script("dnf", ["kernel", "bash"], ["kernel"]).splitlines()[-1] == (
        "dnf -y upgrade bash --exclude=kernel"
    )
    assert _rpm_script("yum", [], ["java*"]).splitlines()[-1] == "yum -y upgrade '--exclude=java*'"


def test_image_target_names_the_missing_image(tmp_path: Path) -> None:
    doc = tmp_path / "d.yaml"
    doc.write_text(
        "name: d\nschemaVersion: 1.0\nphases:\n  - name: test\n    steps:\n      - {name: R, action: Reboot}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", "toe", "run", "--target", "image:no-such-image@1.0.0",
         "-d", str(doc), "--data-dir", str(tmp_path / "home"), "-l", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no-such-image" in done.stderr
    assert not (tmp_path / "logs").exists()
