"""Test phases on real qemu boots of Kiln-built disks (TCG here: KVM is probed and does not work).

Boots are few and shared (each is ~25 s of CPU on an idle 2-core machine, minutes under load).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.monitor import Event, ListMonitor
from kiln.outputs.convert import DiskImage
from kiln.store import file_sha256
from kiln.toe.results import FAILED, IGNORED_FAILURE, SKIPPED, SUCCESS, SUCCESS_WITH_IGNORED_FAILURE
from kiln.verify.vm import TIMED_OUT, run_vm_tests

pytestmark = pytest.mark.e2e

CHECKS = """\
name: instance-checks
schemaVersion: 1.0
parameters:
  - Hostname:
      type: string
phases:
  - name: test
    steps:
      - name: BootFinished
        action: ExecuteBash
        timeoutSeconds: 300
        inputs:
          commands:
            - systemctl is-system-running --wait || systemctl --failed --no-pager
            - test "$(hostname)" = '{{ Hostname }}'
            - findmnt -no FSTYPE / | grep -qx ext4
      - name: FreshMachineId
        action: ExecuteBash
        inputs:
          commands:
            - journalctl -b -o cat | grep -F 'Initializing machine ID from'
            - test -s /etc/machine-id
      - name: FirmwareIs
        action: ExecuteBash
        inputs:
          commands: ["test -d /sys/firmware/efi && echo uefi"]
      - name: HangsAndIsKilled
        action: ExecuteBash
        onFailure: Ignore
        timeoutSeconds: 5
        inputs:
          commands: ["sleep 600"]
"""

FAILING = """\
name: failing-checks
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Broken
        action: ExecuteBash
        inputs:
          commands: ["echo 'about to fail'", "exit 3"]
      - name: NeverRuns
        action: ExecuteBash
        inputs:
          commands: ["echo should not run"]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def assert_torn_down(workdir: Path) -> None:
    """No scratch files and no process still using them (qemu, qemu-storage-daemon)."""
    assert list(workdir.iterdir()) == []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(workdir) not in cmdline, cmdline
    assert str(workdir) not in Path("/proc/self/mounts").read_text()


def test_uefi_boot_runs_test_phases_and_reports_failures(uefi_disk: DiskImage, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    docs = [
        ("checks", write(tmp_path, "checks.yaml", CHECKS)),
        ("failing", write(tmp_path, "failing.yaml", FAILING)),
    ]
    monitor = ListMonitor()
    before = file_sha256(uefi_disk.path)
    result = run_vm_tests(uefi_disk.path, docs, parameters={"checks": {"Hostname": "kiln-test"}}, boot="uefi",
                          timeout=900, monitor=monitor, workdir=workdir)  # fmt: skip
    checks, failing = result.documents
    assert [(s.name, s.status) for s in checks.steps()] == [
        ("BootFinished", SUCCESS),
        ("FreshMachineId", SUCCESS),
        ("FirmwareIs", SUCCESS),
        ("HangsAndIsKilled", IGNORED_FAILURE),
    ]
    assert checks.steps()[2].outputs["stdout"] == "uefi"
    assert "timed out after 5s and was killed" in (checks.steps()[3].failure_message or "")
    assert checks.status == SUCCESS_WITH_IGNORED_FAILURE
    assert [(s.name, s.status, s.exit_code) for s in failing.steps()] == [
        ("Broken", FAILED, 3),
        ("NeverRuns", SKIPPED, None),
    ]
    assert failing.status == FAILED and "about to fail" in (failing.steps()[0].failure_message or "")
    assert result.status == FAILED and not result.ok
    assert result.failure_message and "failing: Broken: exited with code 3" in result.failure_message
    assert result.boot_seconds is not None and 0 < result.boot_seconds < result.duration
    assert result.accel in ("kvm", "tcg")
    serial = [e.message for e in monitor.events if e.kind == "output" and e.scope == "vm"]
    assert any("Welcome to Debian" in line for line in serial)
    steps = [(e.kind, e.step, e.status) for e in monitor.events if e.scope == "step"]
    assert ("end", "Broken", FAILED) in steps and ("end", "BootFinished", SUCCESS) in steps
    assert file_sha256(uefi_disk.path) == before  # only the overlay was written
    assert_torn_down(workdir)


def test_bios_boot_from_the_hybrid_disk(hybrid_disk: DiskImage, tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "bios.yaml",
        FAILING.replace("exit 3", "test ! -d /sys/firmware/efi").replace(
            '  - name: NeverRuns\n        action: ExecuteBash\n        inputs:\n          commands: ["echo should not run"]\n',
            "",
        ),
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_vm_tests(hybrid_disk.path, [("bios", doc)], boot="bios", timeout=900, monitor=ListMonitor(),
                          workdir=workdir)  # fmt: skip
    assert result.status == SUCCESS, result.failure_message
    assert [s.status for s in result.documents[0].steps()] == [SUCCESS]
    assert_torn_down(workdir)


def test_a_hung_guest_is_killed_at_the_timeout(uefi_disk: DiskImage, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    doc = write(tmp_path, "failing.yaml", FAILING)
    started = time.monotonic()
    result = run_vm_tests(
        uefi_disk.path, [("failing", doc)], timeout=15, monitor=ListMonitor(), workdir=workdir
    )
    assert time.monotonic() - started < 60
    assert result.status == TIMED_OUT and not result.ok
    assert result.failure_message and "timed out after 15s and was killed" in result.failure_message
    assert [s.status for s in result.documents[0].steps()] == [FAILED, SKIPPED]
    assert_torn_down(workdir)


def test_steps_a_guest_cannot_run_fail_before_booting(uefi_disk: DiskImage, tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "files.yaml",
        FAILING.replace(
            'action: ExecuteBash\n        inputs:\n          commands: ["echo \'about to fail\'", "exit 3"]',
            "action: CreateFile\n        inputs: [{path: /x, content: y}]",
        ),
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(
        ValidationFailed, match=r"files.yaml:6: phases\[test\].steps\[Broken\].action: CreateFile"
    ):
        run_vm_tests(uefi_disk.path, [("files", doc)], timeout=60, monitor=ListMonitor(), workdir=workdir)
    assert_torn_down(workdir)


class InterruptOnFirstConsoleLine(ListMonitor):
    """Presses Ctrl-C (SIGINT to this process) as soon as the guest's console says something."""

    def emit(self, event: Event) -> None:
        super().emit(event)
        if event.kind == "output" and event.scope == "vm" and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_kills_qemu_and_removes_the_overlay(uefi_disk: DiskImage, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    doc = write(tmp_path, "failing.yaml", FAILING)
    # As at a terminal, even when the suite runs from a background shell (which ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_vm_tests(uefi_disk.path, [("failing", doc)], timeout=300,
                         monitor=InterruptOnFirstConsoleLine(), workdir=workdir)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert_torn_down(workdir)
