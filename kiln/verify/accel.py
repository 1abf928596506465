"""Choose the qemu accelerator: KVM only when it really runs the firmware the test boots, TCG otherwise.

``/dev/kvm`` can exist and still fail, differently from one nested host to the next: ``-cpu host``
aborts ("failed to set MSR"), or SeaBIOS boots while OVMF dies at once with "KVM internal error ...
emulation failure" and qemu stays alive, paused. So the probe boots the *same* firmware with the
*same* CPU arguments as the test (OVMF for UEFI, SeaBIOS for BIOS) and waits for it to reach its boot
manager. A KVM failure seen later, during a real boot, marks KVM broken for that firmware for the rest
of the process (:func:`mark_kvm_broken`). Asking for ``kvm`` or ``tcg`` (``KILN_ACCEL``) skips the probe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kiln.errors import ToolMissing
from kiln.sandbox.run import CommandTimedOut, require_tool, run

Firmware = Literal["uefi", "bios"]
PROBE_SECONDS = 10.0
OVMF_PAIRS = [
    (Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
    (Path("/usr/share/OVMF/OVMF_CODE.fd"), Path("/usr/share/OVMF/OVMF_VARS.fd")),
]
# What each firmware prints once it hands over to boot loaders (on the serial port for OVMF, on
# SeaBIOS's debug port), and what qemu prints on stderr when KVM cannot run the guest.
REACHED_BOOT_MANAGER = {
    "uefi": ("BdsDxe:", "UEFI Interactive Shell"),
    "bios": ("Booting from ", "No bootable"),
}
KVM_FAILURES = ("KVM internal error", "failed to set MSR", "kvm_buf_set_msrs", "KVM_RUN failed")

_broken: dict[str, str] = {}
_probed: dict[str, Accel] = {}
_lock = threading.Lock()


ACCEL_ARGS = {
    "kvm": ("-accel", "kvm", "-cpu", "host"),
    "tcg": ("-accel", "tcg,thread=multi", "-cpu", "max"),
}


@dataclass(frozen=True)
class Accel:
    name: Literal["kvm", "tcg"]
    reason: str
    args: tuple[str, ...] = ()  # qemu arguments; empty means the usual ones for ``name``

    def qemu_args(self) -> list[str]:
        return list(self.args or ACCEL_ARGS[self.name])


TCG_FALLBACK = "TCG (software emulation)"


def is_kvm_failure(line: str) -> bool:
    """Is this qemu stderr line KVM giving up on the guest?"""
    return any(needle in line for needle in KVM_FAILURES)


def firmware_args(boot: Firmware, scratch: Path) -> list[str]:
    """qemu arguments for the firmware (OVMF gets a private copy of its variable store in ``scratch``)."""
    if boot == "bios":
        return []  # qemu's default firmware is SeaBIOS
    for code, variables in OVMF_PAIRS:
        if code.is_file() and variables.is_file():
            vars_copy = scratch / "OVMF_VARS.fd"
            shutil.copyfile(variables, vars_copy)
            return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]  # fmt: skip
    raise ToolMissing("OVMF UEFI firmware (/usr/share/OVMF)", "ovmf")


def choose_accel(requested: Literal["auto", "kvm", "tcg"] = "auto", boot: Firmware = "uefi") -> Accel:
    """The accelerator to use for a guest booting ``boot`` firmware; ``auto`` probes KVM once per
    process and firmware."""
    if requested == "tcg":
        return Accel("tcg", "TCG requested")
    if requested == "kvm":
        return Accel("kvm", "KVM requested")
    with _lock:
        if boot in _broken:
            return Accel("tcg", f"KVM failed earlier with {boot} firmware ({_broken[boot]}): using TCG")
        if boot not in _probed:
            _probed[boot] = probe_kvm(boot)
        return _probed[boot]


def mark_kvm_broken(boot: Firmware, reason: str) -> None:
    """Remember that a real boot under KVM failed: later guests of this process go straight to TCG."""
    with _lock:
        _broken[boot] = reason


def probe_kvm(boot: Firmware) -> Accel:
    """Boot ``boot`` firmware under KVM with the test's CPU arguments until it reaches its boot manager."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", f"/dev/kvm is missing or not accessible: using {TCG_FALLBACK}")
    qemu = require_tool("qemu-system-x86_64")
    markers = REACHED_BOOT_MANAGER[boot]
    with tempfile.TemporaryDirectory(prefix="kiln-kvm-probe-") as tmp:
        pidfile = Path(tmp) / "qemu.pid"
        seen: list[str] = []
        verdict: list[str] = []

        def watch(stream: str, line: str) -> None:
            seen.append(line)
            if not verdict and (any(m in line for m in markers) or is_kvm_failure(line)):
                verdict.append(line)
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)

        console = (
            ["-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con"]
            if boot == "uefi"
            else ["-chardev", "stdio,id=con,signal=off", "-device", "isa-debugcon,iobase=0x402,chardev=con"]
        )
        argv = [qemu, *Accel("kvm", "").qemu_args(), "-machine", "q35", "-m", "128", "-nodefaults",
                "-display", "none", "-no-user-config", "-no-reboot", "-pidfile", str(pidfile),
                *firmware_args(boot, Path(tmp)), *console]  # fmt: skip
        try:
            done = run(argv, timeout=PROBE_SECONDS, check=False, on_output=watch)
        except CommandTimedOut:
            return Accel(
                "tcg", f"KVM: {boot} firmware made no progress in {PROBE_SECONDS:g}s: using {TCG_FALLBACK}"
            )
    if verdict and not is_kvm_failure(verdict[0]):
        return Accel("kvm", f"KVM works (the {boot} firmware reached its boot manager)")
    failure = verdict[0] if verdict else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Accel("tcg", f"KVM cannot boot {boot} firmware here ({failure.strip()}): using {TCG_FALLBACK}")
