"""Choose the qemu accelerator: KVM only when it really runs a guest, TCG otherwise.

``/dev/kvm`` can exist and still fail (on some nested hosts ``-cpu host`` aborts with "failed to set
MSR", and other CPU models hang), so the probe boots SeaBIOS under KVM for a few seconds and looks
for its banner on the debug console. ``KILN_ACCEL=kvm|tcg`` skips the probe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kiln.sandbox.run import CommandTimedOut, require_tool, run

PROBE_SECONDS = 6.0


@dataclass(frozen=True)
class Accel:
    name: Literal["kvm", "tcg"]
    reason: str

    def qemu_args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def choose_accel(requested: Literal["auto", "kvm", "tcg"] = "auto") -> Accel:
    """The accelerator to use; ``auto`` probes KVM once per process."""
    forced = os.environ.get("KILN_ACCEL", "").strip().lower()
    if requested == "auto" and forced in ("kvm", "tcg"):
        requested = forced  # type: ignore[assignment]
    if requested == "tcg":
        return Accel("tcg", "TCG requested")
    if requested == "kvm":
        return Accel("kvm", "KVM requested")
    return probe_kvm()


@functools.cache
def probe_kvm() -> Accel:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is missing or not accessible: using TCG (software emulation)")
    qemu = require_tool("qemu-system-x86_64")
    with tempfile.TemporaryDirectory(prefix="kiln-kvm-probe-") as tmp:
        pidfile = Path(tmp) / "qemu.pid"
        seen: list[str] = []

        def watch(stream: str, line: str) -> None:
            seen.append(line)
            if "SeaBIOS" in line and pidfile.exists():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)

        argv = [qemu, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "64", "-nodefaults",
                "-display", "none", "-no-user-config", "-pidfile", str(pidfile),
                "-chardev", "stdio,id=dbg", "-device", "isa-debugcon,iobase=0x402,chardev=dbg"]  # fmt: skip
        try:
            done = run(argv, timeout=PROBE_SECONDS, check=False, on_output=watch)
        except CommandTimedOut:
            return Accel("tcg", f"KVM guest made no progress in {PROBE_SECONDS:g}s: using TCG")
    if any("SeaBIOS" in line for line in seen):
        return Accel("kvm", "KVM works")
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return Accel("tcg", f"KVM does not work here ({tail}): using TCG")
