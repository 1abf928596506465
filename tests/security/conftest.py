"""Fixtures for the confinement tests: a Debian root with the escape probe, and a runner."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.overlay import overlay
from kiln.sandbox.run import Completed

PROBE_SOURCE = Path(__file__).with_name("probe.c")


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The escape probe, a static binary (the minbase image has neither a compiler nor Python)."""
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-o", str(out), str(PROBE_SOURCE)], check=True)
    return out


@pytest.fixture(scope="module")
def root(bookworm_root: ParentRoot, probe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A writable Debian 12 root (an overlay on the shared parent) with the probe in /usr/local/bin."""
    scratch = tmp_path_factory.mktemp("security-root")
    with overlay([bookworm_root.rootfs], scratch / "upper", scratch) as merged:
        shutil.copy2(probe, merged / "usr/local/bin/probe")
        yield merged


def sandboxed(root: Path, script: str, *, network: bool, binds: tuple[Bind, ...] = (),
              env: dict[str, str] | None = None) -> Completed:  # fmt: skip
    """Run a shell script in the real sandbox (what build, validate and toe steps get)."""
    options = SandboxOptions(network=network, binds=binds, env=env or {})
    return run_in_sandbox(root, ["sh", "-c", script], options, timeout=60, check=False)


def probe_results(done: Completed) -> dict[str, str]:
    """``{"bpf": "errno=EPERM", "tcp": "ok", ...}`` from the probe's output."""
    results = {}
    for line in done.stdout.splitlines():
        name, _, outcome = line.partition(" ")
        if outcome == "ok" or outcome.startswith("errno="):
            results[name] = outcome
    return results
