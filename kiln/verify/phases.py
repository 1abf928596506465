"""Test phases on fresh instances, shared by the build and ``kiln test``.

A container instance is the OCI layout unpacked into a new directory and run in the sandbox with its
own loopback-only network namespace (services a test starts cannot collide with the host's ports);
a VM instance is a qemu boot of a copy-on-write overlay of a disk. Both are always torn down.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from kiln.errors import StepFailed
from kiln.monitor import Monitor
from kiln.sandbox.bwrap import SandboxOptions
from kiln.sandbox.cachebind import read_only
from kiln.sandbox.overlay import overlay
from kiln.toe.document import Document
from kiln.toe.runner import RootfsTarget, Target, run_document
from kiln.verify.deadline import BoundedTarget, TestDeadline
from kiln.verify.instance import fresh_instance
from kiln.verify.vm import run_vm_tests


@dataclass(frozen=True)
class TestDocument:
    """A component whose test phase runs: its label, document and parameter values."""

    __test__ = False  # not a pytest test class

    label: str
    document: Document
    parameters: dict[str, str]


class TestsFailed(StepFailed):
    """A test phase failed on a fresh instance."""

    __test__ = False


def _failure(prefix: str, label: str, instance: str, message: str | None) -> TestsFailed:
    return TestsFailed(
        f"{prefix}component {label}: phase test ({instance}): {message or 'test phase failed'}",
        hint="nothing was recorded; fix the image or the test and build again",
    )


@contextmanager
def container_instance(layout: Path, scratch: Path, layer_trees: Sequence[Path] | None) -> Iterator[Path]:
    """A fresh root of the image: the layout's layers unpacked, or, when the caller vouches that
    ``layer_trees`` (bottom first) are exactly the trees those layers were written from, an overlay of
    them with a throwaway upper directory (the same filesystem, without unpacking it again)."""
    if layer_trees:
        scratch.mkdir(parents=True, exist_ok=True)
        with overlay(list(reversed(layer_trees)), scratch / "instance-upper", scratch) as root:
            yield root
        shutil.rmtree(scratch / "instance-upper", ignore_errors=True)
    else:
        with fresh_instance(layout, scratch) as instance:
            yield instance.root


def test_on_container(layout: Path, tests: Sequence[TestDocument], *, options: SandboxOptions, workdir: str,
                      scratch: Path, monitor: Monitor, prefix: str = "",
                      layer_trees: Sequence[Path] | None = None,
                      timeout: float | None = None) -> int:  # fmt: skip
    """Run the test phases in a fresh container instance; returns the number of steps executed.
    ``timeout`` bounds the whole stage (:mod:`kiln.verify.deadline`)."""
    executed = 0
    deadline = TestDeadline(timeout) if timeout is not None else None
    # No network; apt's shared caches are plain read-only binds (nothing flows back from a test).
    isolated = replace(options, network=False, cwd=workdir, binds=read_only(options.binds))
    with monitor.stage("test", "test on a fresh container instance") as stage:
        with container_instance(layout, scratch, layer_trees) as root:
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
            target: Target = RootfsTarget(root, isolated)
            if deadline is not None:
                target = BoundedTarget(target, deadline)
            for test in tests:
                result = run_document(
                    test.document,
                    phases=["test"],
                    parameters=test.parameters,
                    target=target,
                    monitor=monitor,
                    label=test.label,
                )
                executed += result.counts()["executedStepCount"]
                if deadline is not None and deadline.expired:
                    raise deadline.failure(prefix, "fresh container instance", test.label)
                if not result.ok:
                    raise _failure(prefix, test.label, "fresh container instance", result.failure_message)
        stage["status"] = "passed"
    return executed


def test_on_vm(disk: Path, tests: Sequence[TestDocument], *, boot: Literal["uefi", "bios"], timeout: float,
               scratch: Path, monitor: Monitor, prefix: str = "",
               accel: Literal["auto", "kvm", "tcg"] = "auto") -> int:  # fmt: skip
    """Boot a copy-on-write overlay of ``disk`` and run the test phases in it; returns steps executed."""
    with monitor.stage("test", f"test on a fresh VM booted from {disk.name}") as stage:
        result = run_vm_tests(
            disk,
            [(t.label, t.document.path) for t in tests],
            parameters={t.label: t.parameters for t in tests},
            boot=boot,
            timeout=timeout,
            monitor=monitor,
            workdir=scratch,
            accel=accel,
        )
        executed = sum(d.counts()["executedStepCount"] for d in result.documents)
        if result.fallback:
            stage["kvm_fallback"] = result.fallback
        if result.status not in ("success", "success-with-ignored-failure"):
            failed = next((d.name for d in result.documents if not d.ok), tests[0].label)
            raise _failure(prefix, failed, f"VM instance, {result.accel}", result.failure_message)
        stage["status"] = "passed"
        stage["boot_seconds"] = result.boot_seconds
        stage["accel"] = result.accel
        if result.fallback:
            stage["kvm_fallback"] = result.fallback
    return executed
