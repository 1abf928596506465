"""VM tests never hang: KVM failures and stuck guests are caught within seconds, the test reruns under
TCG, and qemu dies with the process that started it, even when that process is SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from kiln.outputs.convert import DiskImage
from kiln.verify.accel import PROBE_SECONDS, Accel, is_kvm_failure, probe_kvm
from kiln.verify.guest_plan import GuestPlan
from kiln.verify.vm import _Console, run_vm_tests
from tests.e2e.test_build_failure import processes_using
from tests.verify.test_vm_boot import assert_torn_down, write

REPO = Path(__file__).resolve().parents[2]
PASSING = """\
name: passing
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Firmware
        action: ExecuteBash
        inputs:
          commands: ["test -d /sys/firmware/efi && echo uefi"]
"""


def _victim(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A real process standing in for qemu, with its pid file."""
    proc = subprocess.Popen(["sleep", "600"])
    pidfile = tmp_path / "qemu.pid"
    pidfile.write_text(str(proc.pid))
    return proc, pidfile


def _empty_plan() -> GuestPlan:
    return GuestPlan(labels=[], documents=[], steps=[])


def test_kvm_internal_error_on_stderr_kills_qemu_at_once(tmp_path: Path) -> None:
    proc, pidfile = _victim(tmp_path)
    console = _Console(_empty_plan(), "n0nce", pidfile, ListMonitor(), kvm=True, silence=600)
    try:
        console.line("stdout", "BdsDxe: loading Boot0001")
        assert proc.poll() is None and console.kvm_failure is None
        console.line("stderr", "KVM internal error. Suberror: 1")
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert console.kvm_failure == "KVM internal error. Suberror: 1"
    finally:
        console.stop()
        proc.kill()


def test_a_silent_console_kills_qemu_within_seconds(tmp_path: Path) -> None:
    proc, pidfile = _victim(tmp_path)
    console = _Console(_empty_plan(), "n0nce", pidfile, ListMonitor(), kvm=False, silence=1.5)
    started = time.monotonic()
    try:
        console.line("stdout", "Welcome to Debian")
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert 1.5 <= time.monotonic() - started < 5
        assert console.silent_for is not None and console.kvm_failure is None  # TCG: no retry
    finally:
        console.stop()
        proc.kill()


def test_kvm_failure_lines_are_recognised() -> None:
    assert is_kvm_failure("KVM internal error. Suberror: 1")
    assert is_kvm_failure("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69")
    assert not is_kvm_failure("[    0.000000] Linux version 6.1.0-28-amd64")


@pytest.mark.parametrize("boot", ["uefi", "bios"])
def test_the_probe_boots_the_tests_firmware_and_answers_quickly(boot: str) -> None:
    started = time.monotonic()
    accel = probe_kvm(boot)  # type: ignore[arg-type]
    assert time.monotonic() - started < PROBE_SECONDS + 5
    assert boot in accel.reason
    assert accel.name == "tcg" or "reached its boot manager" in accel.reason


@pytest.mark.e2e
def test_a_stuck_kvm_guest_is_retried_under_tcg(uefi_disk: DiskImage, tmp_path: Path) -> None:
    """A guest that stops producing output under KVM (qemu paused after an internal error looks like
    this: alive, silent) is killed after ``kvm_silence`` seconds and booted again under TCG."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    stuck = Accel("kvm", "a KVM that pauses the guest", args=("-accel", "tcg", "-S"))  # -S: never runs
    monitor = ListMonitor()
    started = time.monotonic()
    result = run_vm_tests(uefi_disk.path, [("passing", write(tmp_path, "p.yaml", PASSING))], timeout=600,
                          monitor=monitor, workdir=workdir, accel=stuck, kvm_silence=4)  # fmt: skip
    assert result.ok, result.failure_message
    assert result.accel == "tcg"
    assert result.fallback and "silent for" in result.fallback and "KVM" in result.fallback
    assert result.documents[0].steps()[0].outputs["stdout"] == "uefi"
    warnings = [e.message for e in monitor.events if e.kind == "warning"]
    assert any("booting it again under TCG" in w for w in warnings), warnings
    stages = [e for e in monitor.events if e.kind == "end" and e.scope == "verify"]
    assert [s.data.get("accel") for s in stages] == ["kvm", "tcg"]
    assert "kvm_failure" in stages[0].data and [s.status for s in stages] == ["failed", "success"]
    assert time.monotonic() - started < 600
    assert_torn_down(workdir)


def _qemu_processes(workdir: Path) -> list[int]:
    found = []
    for pid in processes_using(workdir):
        with contextlib.suppress(OSError):
            if b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("victim", ["supervisor", "worker"])
def test_sigkill_of_the_caller_kills_qemu(uefi_disk: DiskImage, tmp_path: Path, victim: str) -> None:
    """However the process running a VM test dies, its qemu dies with it (its own PID namespace)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    doc = write(tmp_path, "p.yaml", PASSING)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from kiln.monitor import ListMonitor
        from kiln.sandbox.namespace import contain_process_tree, host_pid
        from kiln.verify.vm import run_vm_tests

        class Announce(ListMonitor):
            def emit(self, event):
                super().emit(event)
                if event.kind == "output" and event.scope == "vm" and not getattr(self, "said", False):
                    self.said = True
                    print("booting", host_pid(), flush=True)

        assert contain_process_tree()
        run_vm_tests(Path({str(uefi_disk.path)!r}), [("p", Path({str(doc)!r}))], timeout=600,
                     monitor=Announce(), workdir=Path({str(workdir)!r}), accel="tcg")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("booting"), line
        assert _qemu_processes(workdir), "qemu is not running"
        os.kill(proc.pid if victim == "supervisor" else int(line.split()[1]), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _qemu_processes(workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _qemu_processes(workdir) == []
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
