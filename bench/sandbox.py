#!/usr/bin/env python3
"""Sandbox benchmark: the cost of one step in today's confined sandbox beside the old one.

Old = the sandbox before the confinement work (five capabilities dropped, environment as
``--setenv``, the host's network namespace for network on). New = Docker's capabilities, seccomp,
masked /proc, own network namespace, pasta for network on. Each variant runs ``true`` N times,
interleaved so that machine noise hits all of them alike; median and p90 are printed side by side,
with the extra cost per step and, for the example recipe, per build.
Usage: .venv/bin/python bench/sandbox.py [--runs N] [--cold-build SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kiln.monitor import ListMonitor
from kiln.recipes.loader import load_recipe
from kiln.rootfs.debian import DebianParent, ensure_parent
from kiln.sandbox.bwrap import SandboxOptions, base_env
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.run import require_tool, run
from kiln.store import Store

REPO = Path(__file__).resolve().parents[1]
BOOKWORM = DebianParent(distribution="debian", suite="bookworm", mirror="http://deb.debian.org/debian")
STEP_ENV = {"SOURCE_DATE_EPOCH": "1700000000", "HTTP_PROXY": ""}
# The example's cold build (kiln build examples/recipes/debian-web.yaml, empty layer cache, warm
# parent and .deb cache) measured on the 2-core development machine; pass --cold-build to override.
COLD_BUILD_SECONDS = 94.0


def old_argv(root: Path, argv: list[str], network: bool) -> list[str]:
    """The sandbox as it was before the confinement work (for comparison only)."""
    cmd = [require_tool("bwrap"), "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
           "--perms", "1777", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--hostname", "kiln", "--die-with-parent", "--new-session", "--clearenv"]  # fmt: skip
    for cap in ("CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_RAWIO"):
        cmd += ["--cap-drop", cap]
    if network:
        cmd += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    else:
        cmd.append("--unshare-net")
    for key, value in sorted((base_env() | STEP_ENV).items()):
        cmd += ["--setenv", key, value]
    return [*cmd, "--chdir", "/", "--", *argv]


def variants(root: Path) -> dict[str, Callable[[], object]]:
    def new(network: bool) -> Callable[[], object]:
        options = SandboxOptions(network=network, env=STEP_ENV)
        return lambda: run_in_sandbox(root, ["true"], options)

    def old(network: bool) -> Callable[[], object]:
        return lambda: run(old_argv(root, ["true"], network))

    return {"old, network off": old(False), "new, network off": new(False),
            "old, network on": old(True), "new, network on (pasta)": new(True)}  # fmt: skip


def example_steps() -> int:
    """Steps of the example recipe's build and validate phases (one sandbox run each at most)."""
    loaded = load_recipe(REPO / "examples/recipes/debian-web.yaml")
    return sum(
        len(phase.steps)
        for component in loaded.components
        for phase in component.document.phases
        if phase.name in ("build", "validate", "test")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold-build", type=float, default=COLD_BUILD_SECONDS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-sandbox-") as tmp:
        parent = ensure_parent(BOOKWORM, Store.open(Path(tmp) / "home"), ListMonitor())
        root = parent.rootfs  # every variant only runs `true`: nothing writes to the shared parent
        runs = variants(root)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for fn in runs.values():
            fn()  # warm up (page cache, the seccomp filter's one-time compilation)
        for _ in range(args.runs):
            for name, fn in runs.items():
                start = time.monotonic()
                fn()
                times[name].append((time.monotonic() - start) * 1000)
    print(f"per-step cost of a sandboxed `true`, {args.runs} runs each (ms)")
    print(f"{'variant':28} {'median':>8} {'p90':>8}")
    stats = {}
    for name, values in times.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        stats[name] = median
        print(f"{name:28} {median:8.1f} {p90:8.1f}")
    extra_off = stats["new, network off"] - stats["old, network off"]
    extra_on = stats["new, network on (pasta)"] - stats["old, network on"]
    print(f"extra per step: network off {extra_off:+.1f} ms, network on {extra_on:+.1f} ms (budget: 50 ms)")
    steps = example_steps()
    total = steps * max(extra_on, extra_off) / 1000
    share = 100 * total / args.cold_build
    print(f"example recipe: {steps} steps x {max(extra_on, extra_off):.1f} ms = {total:.2f} s extra, "
          f"{share:.2f}% of its {args.cold_build:.0f} s cold build (budget: 5%)")  # fmt: skip


if __name__ == "__main__":
    main()
