"""Capability routing: a build's queue is served exactly by the workers able to run it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kiln.capabilities import (
    Capabilities,
    detect,
    host_arch,
    parse_tokens,
    queue_for,
    queues_served,
    waiting_reason,
    worker_capabilities,
)
from kiln.errors import UsageError

ARCHES = ("amd64", "arm64")
DISKS = (0, 5, 30, 60, 700)


def every(kind: str) -> list[Capabilities]:
    return [
        Capabilities(arch=arch, qemu=qemu or kvm, kvm=kvm, disk_gb=disk)
        for arch, qemu, kvm, disk in itertools.product(ARCHES, (False, True), (False, True), DISKS)
    ]


def test_a_worker_serves_a_queue_iff_it_satisfies_the_needs() -> None:
    for offer, needs in itertools.product(every("offer"), every("needs")):
        served = queue_for("builds", needs) in queues_served("builds", offer)
        # disk needs are rounded up to a step: a worker serves the step only if it has the whole step
        rounded = needs.model_copy(
            update={"disk_gb": {0: 0, 5: 5, 30: 50, 60: 100, 700: 1000}[needs.disk_gb]}
        )
        assert served == offer.satisfies(rounded), (offer, needs)


def test_tokens_parse_and_refuse_clearly(tmp_path: Path) -> None:
    named = parse_tokens("kvm, arm64,disk>=50G")
    assert (named.arch, named.qemu, named.kvm, named.disk_gb) == ("arm64", True, True, 50)
    assert parse_tokens(["disk>=2T"]).disk_gb == 2000
    with pytest.raises(UsageError, match="unknown capability 'gpu'"):
        parse_tokens("gpu")
    with pytest.raises(UsageError, match="two architectures"):
        parse_tokens("amd64,arm64")
    detected = Capabilities(arch="amd64", qemu=True, kvm=True, disk_gb=80)
    assert worker_capabilities(None, tmp_path, detected=detected) == detected
    # declared: exactly what is listed, architecture and disk detected unless named
    assert worker_capabilities("qemu", tmp_path, detected=detected) == Capabilities(
        arch="amd64", qemu=True, disk_gb=80
    )


def test_waiting_reasons_name_what_is_missing() -> None:
    amd = Capabilities(arch="amd64", qemu=True, disk_gb=100)
    arm = Capabilities(arch="arm64", disk_gb=100)
    assert waiting_reason(Capabilities(arch="amd64"), "builds", [("builds", amd)]) is None
    assert waiting_reason(Capabilities(arch="arm64"), "builds", [("builds", amd)]) == (
        "waiting: no worker with capability arm64"
    )
    assert waiting_reason(Capabilities(arch="amd64", kvm=True, qemu=True), "builds", [("builds", amd)]) == (
        "waiting: no worker with capability kvm"
    )
    assert waiting_reason(
        Capabilities(arch="arm64", qemu=True), "builds", [("builds", amd), ("builds", arm)]
    ) == ("waiting: no single worker has all of arm64, qemu")
    assert waiting_reason(Capabilities(arch="amd64"), "gpu", [("builds", amd)]) == (
        "waiting: no worker serves queue gpu (start one: kiln worker --queue gpu)"
    )


def test_detected_defaults(tmp_path: Path) -> None:
    import platform
    import shutil

    found = detect(tmp_path, accel="tcg")
    assert found.arch == host_arch() and found.arch != ""
    assert found.qemu == (shutil.which(f"qemu-system-{platform.machine()}") is not None)
    assert found.kvm is False  # KILN_ACCEL=tcg: no KVM offered, no probe
    assert abs(found.disk_gb - shutil.disk_usage(tmp_path).free // 10**9) <= 2  # others write meanwhile
