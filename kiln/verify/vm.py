"""Test phases on a fresh VM instance: qemu boots a copy-on-write overlay of the produced disk.

1. The test phases are validated and resolved on the host (:mod:`kiln.verify.guest_plan`) before
   anything boots; steps the guest cannot run fail here, with file:line.
2. A qcow2 overlay backed by the disk gets Kiln's one-shot test unit (:mod:`kiln.verify.inject`);
   the disk itself is only read.
3. qemu boots the overlay from its own boot loader (OVMF for UEFI, SeaBIOS for BIOS), KVM if it
   really works, TCG otherwise, with a second small disk carrying the resolved steps and the agent.
   The serial console streams into the monitor; agent markers become step start/end events.
4. After poweroff the results are read from the second disk. A panic, emergency shell or missing boot
   device stops qemu at once; the timeout kills it. The scratch directory (overlay, test disk, firmware
   variables) is always removed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kiln.errors import KilnError, ToolMissing
from kiln.monitor import Event, Monitor
from kiln.sandbox.run import CommandTimedOut, require_tool, run
from kiln.toe.results import FAILED, SUCCESS, SUCCESS_WITH_IGNORED_FAILURE, DocumentResult, combine
from kiln.verify.accel import Accel, choose_accel
from kiln.verify.guest_plan import GuestPlan, agent_files, collect_results, plan_tests, stage_plan
from kiln.verify.inject import inject_unit

TIMED_OUT = "timed-out"
OVMF_PAIRS = [
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
]
TEST_DISK_SIZE = "256M"
ANSI = re.compile(r"\x1b(\[[0-9;?=<>]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>78DEHM])")
# Console lines after which the guest will never finish: stop qemu at once instead of waiting.
FATAL = {
    "Kernel panic - not syncing": "the guest kernel panicked",
    "You are in emergency mode": "the guest booted into systemd's emergency mode",
    "Dropping to a shell": "the initramfs could not mount the root file system",
    "No bootable device": "the firmware found no bootable device on the disk",
    "No bootable option or device was found": "the firmware found no bootable device on the disk",
}
# The agent syncs and unmounts the test disk before its last marker, so the results are safe then:
# qemu is stopped a moment later instead of waiting for the guest's own poweroff (tens of seconds of
# systemd shutdown under TCG, measured 30 s).
AFTER_AGENT_GRACE = 1.0


@dataclass
class VmTestResult:
    """Outcome of one test boot: AWSTOE statuses per document, plus how the boot went."""

    status: str  # success | success-with-ignored-failure | failed | timed-out
    documents: list[DocumentResult]
    failure_message: str | None
    boot_seconds: float | None  # qemu start → the agent started (the guest reached multi-user)
    duration: float
    accel: str
    serial_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (SUCCESS, SUCCESS_WITH_IGNORED_FAILURE)


def run_vm_tests(
    disk: Path,
    documents: Sequence[tuple[str, Path]],
    *,
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    boot: Literal["uefi", "bios"] = "uefi",
    timeout: float = 600.0,
    monitor: Monitor,
    workdir: Path | None = None,
    memory_mb: int = 1024,
    cpus: int = 2,
    network: bool = False,
    accel: Literal["auto", "kvm", "tcg"] = "auto",
) -> VmTestResult:
    """Boot an overlay of ``disk`` and run the ``test`` phase of each (label, path) document in it.

    ``parameters`` maps a document's label to its parameter values. Raises ValidationFailed before
    booting when a test step cannot run in a guest; returns a result for everything that happens after.
    """
    plan = plan_tests(documents, parameters)
    disk = disk.absolute()
    fmt = _disk_format(disk)
    chosen = choose_accel(accel)
    monitor.info(chosen.reason)
    scratch = Path(tempfile.mkdtemp(prefix="kiln-vm-", dir=workdir))
    try:
        with monitor.stage(
            "verify", f"test phase on a VM instance ({boot}, {chosen.name})", phase="test"
        ) as info:
            machine = _Machine(boot, timeout, chosen, memory_mb, cpus, network)
            result = _boot_and_test(disk, fmt, plan, scratch, machine, monitor)
            info.update(status=result.status, boot_seconds=result.boot_seconds, accel=chosen.name)
            if result.failure_message:
                info["failure"] = result.failure_message
            return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _disk_format(disk: Path) -> str:
    if not disk.is_file():
        raise KilnError(f"disk image {disk} does not exist")
    info = json.loads(run([require_tool("qemu-img"), "info", "--output=json", str(disk)]).stdout)
    if info.get("backing-filename"):
        raise KilnError(f"{disk} is itself an overlay; test the complete disk image")
    return str(info["format"])


def _firmware(boot: str, scratch: Path) -> list[str]:
    if boot == "bios":
        return []  # qemu's default firmware is SeaBIOS
    for code, variables in OVMF_PAIRS:
        if code.is_file() and variables.is_file():
            vars_copy = scratch / "OVMF_VARS.fd"
            shutil.copyfile(variables, vars_copy)
            return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]  # fmt: skip
    raise ToolMissing("OVMF UEFI firmware (/usr/share/OVMF)", "ovmf")


@dataclass(frozen=True)
class _Machine:
    boot: str
    timeout: float
    accel: Accel
    memory_mb: int
    cpus: int
    network: bool


def _boot_and_test(
    disk: Path, fmt: str, plan: GuestPlan, scratch: Path, machine: _Machine, monitor: Monitor
) -> VmTestResult:
    accel, timeout = machine.accel, machine.timeout
    qemu, qemu_img = require_tool("qemu-system-x86_64"), require_tool("qemu-img")
    overlay = scratch / "overlay.qcow2"
    run([qemu_img, "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(disk), str(overlay)])
    inject_unit(overlay, agent_files()["kiln-test.service"], scratch)
    nonce = secrets.token_hex(8)
    stage_plan(plan, scratch / "testdisk", nonce)
    tests = scratch / "tests.img"
    run([require_tool("mkfs.ext4"), "-q", "-F", "-L", "KILNTEST", "-O", "^has_journal",
         "-d", str(scratch / "testdisk"), str(tests), TEST_DISK_SIZE])  # fmt: skip
    pidfile = scratch / "qemu.pid"
    argv = [
        qemu, "-name", "kiln-test", "-machine", "q35", *accel.qemu_args(), "-m", str(machine.memory_mb),
        "-smp", str(machine.cpus), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-pidfile", str(pidfile), "-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0",
        "-rtc", "base=utc", "-device", "virtio-rng-pci", *_firmware(machine.boot, scratch),
        "-drive", f"id=root,if=none,file={overlay},format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        "-drive", f"id=tests,if=none,file={tests},format=raw,cache=writeback",
        "-device", "virtio-blk-pci,drive=tests",
        "-nic", "user,model=virtio-net-pci" if machine.network else "none",
    ]  # fmt: skip
    watch = _Console(plan, nonce, pidfile, monitor)
    exit_code: int | None = None
    try:
        exit_code = run(argv, timeout=timeout, check=False, on_output=watch.line).returncode
    except CommandTimedOut:
        watch.timed_out = True
    finally:
        watch.stop()
    results = None
    if watch.agent_started:
        run([require_tool("debugfs"), "-R", f"rdump /results {scratch}", str(tests)], check=False)
        results = scratch / "results"
    return watch.outcome(results, exit_code, timeout, accel)


class _Console:
    """Reads the serial console line by line: monitor events, agent markers, fatal conditions."""

    def __init__(self, plan: GuestPlan, nonce: str, pidfile: Path, monitor: Monitor) -> None:
        self.plan, self.pidfile, self.monitor = plan, pidfile, monitor
        self.marker = f"KILN-{nonce} "
        self.steps = {s.id: s for s in plan.steps}
        self.started = time.monotonic()
        self.step_started: dict[str, float] = {}
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.boot_seconds: float | None = None
        self.agent_started = self.agent_done = self.timed_out = False
        self.fatal: str | None = None
        self.running: str | None = None
        self._timer: threading.Timer | None = None

    def line(self, stream: str, raw: str) -> None:
        text = ANSI.sub("", raw).replace("\r", "").rstrip()
        if not text.strip():
            return
        at = text.find(self.marker)
        if at >= 0:
            self._marker(text[at + len(self.marker) :].split())
            return
        self.tail.append(text)
        self.monitor.emit(Event("output", scope="vm", message=text, phase="test", data={"stream": stream}))
        if self.fatal is None and not self.agent_started:
            for needle, reason in FATAL.items():
                if needle in text:
                    self.fatal = reason
                    self._kill()

    def _marker(self, words: list[str]) -> None:
        kind, args = (words[0], words[1:]) if words else ("", [])
        now = time.monotonic()
        if kind == "agent-start":
            self.agent_started, self.boot_seconds = True, now - self.started
            self.monitor.info(
                f"guest up after {self.boot_seconds:.1f}s; running {len(self.plan.steps)} test step(s)"
            )
        elif kind in ("step-start", "step-end") and args and args[0] in self.steps:
            step = self.steps[args[0]]
            label = self.plan.labels[step.document]
            message = f"{label}: {step.name}"
            if kind == "step-start":
                self.running, self.step_started[step.id] = step.id, now
                self.monitor.emit(
                    Event("start", "step", message, component=label, phase="test", step=step.name)
                )
            elif step.id in self.step_started:
                status = args[1] if len(args) > 1 else "failed"
                code = int(args[2]) if len(args) > 2 and args[2].lstrip("-").isdigit() else None
                self.running = None
                took = now - self.step_started[step.id]
                self.monitor.emit(Event("end", "step", message, component=label, phase="test", step=step.name,
                                        status=status, exit_code=code, duration=took))  # fmt: skip
            else:
                self.monitor.info(f"{message}: skipped (an earlier step aborted the document)")
        elif kind == "agent-end":
            self.agent_done = True
            self._timer = threading.Timer(AFTER_AGENT_GRACE, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pidfile.read_text()), signal.SIGKILL)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def outcome(
        self, results: Path | None, exit_code: int | None, timeout: float, accel: Accel
    ) -> VmTestResult:
        tail = "\n".join(list(self.tail)[-25:])
        running = self.steps[self.running].name if self.running else None
        if self.fatal:
            message = f"{self.fatal}; last console lines:\n{tail}"
        elif self.timed_out:
            where = (
                f"step {running!r} was running"
                if running
                else (
                    "the tests were running" if self.agent_started else "the guest had not finished booting"
                )
            )
            message = (
                f"the VM test timed out after {timeout:g}s and was killed ({where}); last console lines:\n"
            )
            message += tail
        elif not self.agent_done:
            message = (f"qemu exited (code {exit_code}) before the test agent finished; "
                       f"last console lines:\n{tail}")  # fmt: skip
        else:
            message = None
        documents = collect_results(self.plan, results, fallback_message=message or "no result was written")
        if message is None:
            status = combine([d.status for d in documents]) if documents else SUCCESS
            failed = [d for d in documents if d.status == FAILED]
            message = "; ".join(f"{d.name}: {d.failure_message}" for d in failed) or None
        else:
            status = TIMED_OUT if self.timed_out else FAILED
        return VmTestResult(status, documents, message, self.boot_seconds, time.monotonic() - self.started,
                            accel.name, list(self.tail))  # fmt: skip
