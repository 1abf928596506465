"""What a build worker can run, what a build needs, and the queue that joins them.

Routing is by queue name: a build needing ``{arch, qemu?, kvm?, disk>=N}`` is deferred to exactly one
queue (``builds.arm64.qemu.kvm.disk50g``), and a worker listens on every queue whose needs it meets
(its architecture, each subset of its qemu/kvm, each disk step up to its disk). Procrastinate then
hands a job only to a worker able to run it, with no job ever taken and put back, and a request no
registered worker can run simply stays ``todo`` (:func:`waiting_reason` says why).

Disk sizes are rounded up to :data:`DISK_STEPS` so the number of queues stays small (4 x 10 per
architecture at most).
"""

from __future__ import annotations

import platform
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kiln.errors import KilnError, UsageError

DISK_STEPS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)  # GB
QUEUE_BASE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")  # channel names: procrastinate_queue_v1#<queue> <= 63
ARCH = re.compile(r"^(amd64|arm64|armhf|armel|i386|ppc64el|s390x|riscv64|mips64el)$")
DISK = re.compile(r"^disk>=(\d{1,6})([GT])B?$", re.IGNORECASE)
MACHINE_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "armhf",
    "i686": "i386",
    "ppc64le": "ppc64el",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
FLAGS = ("qemu", "kvm")


class Capabilities(BaseModel):
    """A worker's offer, or a build's needs (then ``disk_gb`` is a minimum and flags are required)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: str
    qemu: bool = False
    kvm: bool = False
    disk_gb: int = 0

    def tokens(self) -> list[str]:
        """As the command line writes them: ``arm64``, ``qemu``, ``kvm``, ``disk>=50G``."""
        flags = [f for f in FLAGS if getattr(self, f)]
        return [self.arch, *flags, *([f"disk>={self.disk_gb}G"] if self.disk_gb else [])]

    def satisfies(self, needs: Capabilities) -> bool:
        return (
            self.arch == needs.arch
            and all(getattr(self, f) or not getattr(needs, f) for f in FLAGS)
            and self.disk_gb >= needs.disk_gb
        )

    def missing(self, needs: Capabilities) -> list[str]:
        """The tokens of ``needs`` this offer lacks."""
        lost = [needs.arch] if self.arch != needs.arch else []
        lost += [f for f in FLAGS if getattr(needs, f) and not getattr(self, f)]
        return lost + ([f"disk>={needs.disk_gb}G"] if needs.disk_gb > self.disk_gb else [])


@dataclass
class Tokens:
    """What a ``--capability`` list (or a request's ``requires``) names; None: not named."""

    arch: str | None = None
    qemu: bool = False
    kvm: bool = False
    disk_gb: int | None = None


def parse_tokens(text: str | Sequence[str], *, what: str = "--capability") -> Tokens:
    """``kvm,arm64,disk>=50G`` → the fields it names; a clear error for anything else."""
    items = text.split(",") if isinstance(text, str) else [t for part in text for t in part.split(",")]
    found = Tokens()
    for raw in (t.strip() for t in items):
        if not raw:
            continue
        disk = DISK.match(raw)
        if raw.lower() in FLAGS:
            setattr(found, raw.lower(), True)
        elif ARCH.match(raw.lower()):
            if found.arch not in (None, raw.lower()):
                raise UsageError(f"{what}: two architectures ({found.arch}, {raw})")
            found.arch = raw.lower()
        elif disk:
            found.disk_gb = int(disk[1]) * (1000 if disk[2].upper() == "T" else 1)
        else:
            raise UsageError(
                f"{what}: unknown capability {raw!r}",
                hint="use qemu, kvm, an architecture (amd64, arm64, ...) or disk>=SIZE (e.g. disk>=50G)",
            )
    found.qemu = found.qemu or found.kvm  # KVM is an accelerator of qemu
    return found


def host_arch() -> str:
    machine = platform.machine()
    return MACHINE_ARCH.get(machine, machine)


def detect(data_dir: Path, accel: str = "auto") -> Capabilities:
    """This machine's defaults: its architecture, qemu if installed, KVM if the probe boots under it,
    the free disk of the data directory."""
    qemu = shutil.which(f"qemu-system-{platform.machine()}") is not None
    kvm = accel == "kvm"  # KILN_ACCEL decides when set; "auto" boots the KVM probe
    if qemu and accel == "auto":
        from kiln.verify.accel import probe_kvm

        try:
            kvm = probe_kvm("uefi").name == "kvm"
        except KilnError:
            kvm = False
    data_dir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(data_dir).free // 10**9
    return Capabilities(arch=host_arch(), qemu=qemu, kvm=kvm, disk_gb=int(free_gb))


def worker_capabilities(
    declared: str | None, data_dir: Path, *, accel: str = "auto", detected: Capabilities | None = None
) -> Capabilities:
    """``--capability`` given: exactly what it lists (the architecture and disk detected unless listed);
    not given: what :func:`detect` finds."""
    found = detected or detect(data_dir, accel)
    if declared is None:
        return found
    named = parse_tokens(declared)
    return Capabilities(
        arch=named.arch or found.arch,
        qemu=named.qemu,
        kvm=named.kvm,
        disk_gb=found.disk_gb if named.disk_gb is None else named.disk_gb,
    )


def disk_step(gb: int) -> int:
    """``gb`` rounded up to a step of :data:`DISK_STEPS` (0 stays 0: no disk requirement)."""
    if gb <= 0:
        return 0
    for step in DISK_STEPS:
        if gb <= step:
            return step
    raise UsageError(f"disk>={gb}G is more than the largest supported requirement ({DISK_STEPS[-1]}G)")


def check_queue_base(base: str) -> str:
    if not QUEUE_BASE.match(base):
        raise UsageError(
            f"--queue {base!r}: use 1-16 lower-case letters, digits or '-', starting with a letter"
        )
    return base


def queue_for(base: str, needs: Capabilities) -> str:
    """The one queue a build with ``needs`` is deferred to."""
    parts = [base, needs.arch, *[f for f in FLAGS if getattr(needs, f)]]
    step = disk_step(needs.disk_gb)
    return ".".join(parts + ([f"disk{step}g"] if step else []))


def queues_served(base: str, offer: Capabilities) -> list[str]:
    """Every queue a worker with ``offer`` can take jobs from."""
    flags = [f for f in FLAGS if getattr(offer, f)]
    subsets = [set(c) for n in range(len(flags) + 1) for c in combinations(flags, n)]
    steps = [0, *(s for s in DISK_STEPS if s <= offer.disk_gb)]
    return sorted(
        queue_for(
            base, Capabilities(arch=offer.arch, qemu="qemu" in s or "kvm" in s, kvm="kvm" in s, disk_gb=step)
        )
        for s in subsets
        if not ("kvm" in s and "qemu" not in s)
        for step in steps
    )


def waiting_reason(needs: Capabilities, base: str, workers: Iterable[tuple[str, Capabilities]]) -> str | None:
    """Why a queued build has no worker to run it (None when some live worker of queue ``base`` can);
    ``workers`` are the live ones as (queue base, offer)."""
    offers = [offer for queue, offer in workers if queue == base]
    if not offers:
        return f"waiting: no worker serves queue {base} (start one: kiln worker --queue {base})"
    if any(o.satisfies(needs) for o in offers):
        return None
    for token in needs.tokens():
        if not any(token not in o.missing(needs) for o in offers):
            return f"waiting: no worker with capability {token}"
    return "waiting: no single worker has all of " + ", ".join(needs.tokens())
