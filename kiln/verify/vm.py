"""Test phases on a fresh VM instance: qemu boots a copy-on-write overlay of the produced disk.

1. The test phases are validated and resolved on the host (:mod:`kiln.verify.guest_plan`) before
   anything boots; steps the guest cannot run fail here, with file:line.
2. A qcow2 overlay backed by the disk gets Kiln's one-shot test unit (:mod:`kiln.verify.inject`);
   the disk itself is only read.
3. qemu boots the overlay from its own boot loader (OVMF for UEFI, SeaBIOS for BIOS), KVM if it
   really boots that firmware, TCG otherwise, with a second small disk carrying the resolved steps and
   the agent. The serial console streams into the monitor; agent markers become step start/end events,
   and the agent prints a heartbeat while a step runs.
4. After poweroff the results are read from the second disk. A panic, emergency shell or missing boot
   device stops qemu at once; the timeout kills it. Under KVM, "KVM internal error" on qemu's stderr or
   a console silent for ``KVM_SILENCE`` seconds (a guest KVM paused or wedged) kills qemu within
   seconds, and the test boots once more, from a fresh overlay, under TCG; the result records it.
   Under TCG a console silent for ``TCG_SILENCE`` seconds fails the test. The scratch directory
   (overlay, test disk, firmware variables) is always removed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
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

from kiln.errors import KilnError
from kiln.monitor import Event, Monitor
from kiln.sandbox.run import CommandTimedOut, require_tool, run
from kiln.toe.results import FAILED, SUCCESS, SUCCESS_WITH_IGNORED_FAILURE, DocumentResult, combine
from kiln.verify.accel import Accel, Firmware, choose_accel, firmware_args, is_kvm_failure, mark_kvm_broken
from kiln.verify.guest_plan import GuestPlan, agent_files, collect_results, plan_tests, stage_plan
from kiln.verify.inject import inject_unit

TIMED_OUT = "timed-out"
# Seconds without a console line before a guest counts as stuck. The agent's heartbeat (every
# HEARTBEAT_SECONDS while a step runs) and the boot's own messages keep a live guest well inside these;
# TCG on a busy 2-core machine boots several times slower, hence its wider margin.
KVM_SILENCE = 30.0
TCG_SILENCE = 180.0
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
    fallback: str | None = None  # why a KVM boot was abandoned and the test ran again under TCG
    kvm_failure: str | None = None  # this boot was stopped because KVM could not run the guest

    @property
    def ok(self) -> bool:
        return self.status in (SUCCESS, SUCCESS_WITH_IGNORED_FAILURE)


def run_vm_tests(
    disk: Path,
    documents: Sequence[tuple[str, Path]],
    *,
    parameters: Mapping[str, Mapping[str, str]] | None = None,
    boot: Firmware = "uefi",
    timeout: float = 600.0,
    monitor: Monitor,
    workdir: Path | None = None,
    memory_mb: int = 1024,
    cpus: int = 2,
    network: bool = False,
    accel: Literal["auto", "kvm", "tcg"] | Accel = "auto",
    kvm_silence: float = KVM_SILENCE,
) -> VmTestResult:
    """Boot an overlay of ``disk`` and run the ``test`` phase of each (label, path) document in it.

    ``parameters`` maps a document's label to its parameter values. Raises ValidationFailed before
    booting when a test step cannot run in a guest; returns a result for everything that happens after.
    A boot that KVM cannot run is retried once under TCG (``fallback`` in the result says why).
    ``kvm_silence`` is how many seconds of console silence make a KVM guest count as stuck.
    """
    plan = plan_tests(documents, parameters)
    disk = disk.absolute()
    fmt = _disk_format(disk)
    chosen = accel if isinstance(accel, Accel) else choose_accel(accel, boot)
    monitor.info(chosen.reason)
    machine = _Machine(boot, timeout, chosen, memory_mb, cpus, network, kvm_silence)
    result = _attempt(disk, fmt, plan, machine, monitor, workdir)
    if chosen.name == "kvm" and result.kvm_failure:
        reason = result.kvm_failure
        if not isinstance(accel, Accel):  # the probe's verdict was wrong: later guests skip KVM
            mark_kvm_broken(boot, reason)
        monitor.warning(f"KVM could not run the guest ({reason}); booting it again under TCG")
        tcg = Accel("tcg", f"TCG after KVM failed: {reason}")
        result = _attempt(disk, fmt, plan, dataclasses.replace(machine, accel=tcg), monitor, workdir)
        result.fallback = reason
    return result


def _attempt(disk: Path, fmt: str, plan: GuestPlan, machine: _Machine, monitor: Monitor,
             workdir: Path | None) -> VmTestResult:  # fmt: skip
    """One boot from a fresh overlay in a fresh scratch directory, always removed."""
    scratch = Path(tempfile.mkdtemp(prefix="kiln-vm-", dir=workdir))
    try:
        title = f"test phase on a VM instance ({machine.boot}, {machine.accel.name})"
        with monitor.stage("verify", title, phase="test") as info:
            result = _boot_and_test(disk, fmt, plan, scratch, machine, monitor)
            info.update(status=result.status, boot_seconds=result.boot_seconds, accel=result.accel)
            if result.failure_message:
                info["failure"] = result.failure_message
            if result.kvm_failure:
                info["kvm_failure"] = result.kvm_failure
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


@dataclass(frozen=True)
class _Machine:
    boot: Firmware
    timeout: float
    accel: Accel
    memory_mb: int
    cpus: int
    network: bool
    kvm_silence: float


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
        "-rtc", "base=utc", "-device", "virtio-rng-pci", *firmware_args(machine.boot, scratch),
        "-drive", f"id=root,if=none,file={overlay},format=qcow2,cache=unsafe,discard=unmap",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        "-drive", f"id=tests,if=none,file={tests},format=raw,cache=writeback",
        "-device", "virtio-blk-pci,drive=tests",
        "-nic", "user,model=virtio-net-pci" if machine.network else "none",
    ]  # fmt: skip
    silence = machine.kvm_silence if accel.name == "kvm" else TCG_SILENCE
    watch = _Console(plan, nonce, pidfile, monitor, kvm=accel.name == "kvm", silence=silence)
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
    """Reads the serial console and qemu's stderr line by line: monitor events, agent markers, fatal
    conditions; a watchdog thread kills qemu when the console stays silent for ``silence`` seconds."""

    def __init__(self, plan: GuestPlan, nonce: str, pidfile: Path, monitor: Monitor, *, kvm: bool,
                 silence: float) -> None:  # fmt: skip
        self.plan, self.pidfile, self.monitor = plan, pidfile, monitor
        self.kvm, self.silence = kvm, silence
        self.kvm_failure: str | None = None
        self.silent_for: float | None = None
        self.last_output = time.monotonic()
        self._stopped = threading.Event()
        self._watchdog = threading.Thread(target=self._watch_silence, name="kiln-vm-watchdog", daemon=True)
        self._watchdog.start()
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
        self.last_output = time.monotonic()
        text = ANSI.sub("", raw).replace("\r", "").rstrip()
        if not text.strip():
            return
        if stream == "stderr" and self.kvm and self.kvm_failure is None and is_kvm_failure(text):
            self.kvm_failure = text.strip()
            self._kill()
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

    def _watch_silence(self) -> None:
        while not self._stopped.wait(0.5):
            quiet = time.monotonic() - self.last_output
            if quiet >= self.silence and not self.agent_done:
                self.silent_for = quiet
                if self.kvm and self.kvm_failure is None:
                    self.kvm_failure = f"the guest's console was silent for {quiet:.0f}s under KVM"
                self._kill()
                return

    def _kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pidfile.read_text()), signal.SIGKILL)

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()

    def outcome(
        self, results: Path | None, exit_code: int | None, timeout: float, accel: Accel
    ) -> VmTestResult:
        tail = "\n".join(list(self.tail)[-25:])
        running = self.steps[self.running].name if self.running else None
        if self.kvm_failure:
            message = f"KVM could not run the guest ({self.kvm_failure}); last console lines:\n{tail}"
        elif self.silent_for is not None:
            message = (f"the guest's console was silent for {self.silent_for:.0f}s (a stuck guest) and "
                       f"qemu was killed; last console lines:\n{tail}")  # fmt: skip
        elif self.fatal:
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
                            accel.name, list(self.tail), kvm_failure=self.kvm_failure)  # fmt: skip
