#!/usr/bin/env python3
"""Build benchmark: plain mmdebstrap (the floor) beside `kiln build` cold, no-op and last-component edit.

Every run shares one warm .deb cache, so the figures compare work done, not download speed.
Floor and cold build alternate for several rounds (the mirror's speed varies by tens of percent from
one minute to the next) and the medians are compared.
Usage: .venv/bin/python bench/build.py [--rounds N] [--keep]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILN = REPO / ".venv/bin/kiln"
MIRROR = "http://deb.debian.org/debian"
SOURCES = [
    f"deb {MIRROR} bookworm main",
    f"deb {MIRROR} bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
PACKAGES = "ca-certificates,nginx"
STAGE_SCOPES = ("parent", "component", "validate", "outputs", "inventory", "evidence", "test", "catalog")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # the previous run's writeback must not land in this run's time
    start = time.monotonic()
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    took = time.monotonic() - start
    print(f"  {took:7.2f}s  {' '.join(argv[:3])}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took


def floor(work: Path, debs: Path, n: int) -> float:
    """mmdebstrap of the same package set with the same shared .deb cache."""
    target = work / f"floor-root-{n}"
    return timed([
        "mmdebstrap", "--variant=minbase", "--mode=root", "--skip=essential/unlink",
        "--skip=cleanup/apt/cache", f"--include={PACKAGES}",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
        "bookworm", str(target), *SOURCES,
    ])  # fmt: skip


def stages(home: Path) -> dict[str, float]:
    """Seconds per top-level stage of the newest build log under ``home``."""
    log = max((home / "logs").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    out: dict[str, float] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "end" and event.get("scope") in STAGE_SCOPES:
            name = event["scope"] if event["scope"] != "component" else f"component {event.get('component')}"
            out[name] = out.get(name, 0.0) + float(event.get("duration", 0.0))
    return out


def cold_build(
    work: Path, debs: Path, recipe: Path, n: int
) -> tuple[float, dict[str, float], dict[str, str]]:
    """A cold Kiln build (own data dir and cache; only the .deb files shared, like the floor)."""
    cache = work / f"kiln-cache-{n}"
    (cache / "debs").mkdir(parents=True)
    for deb in debs.glob("*.deb"):
        os.link(deb, cache / "debs" / deb.name)
    env = {"KILN_HOME": str(work / f"kiln-home-{n}"), "KILN_CACHE_DIR": str(cache)}
    took = timed([str(KILN), "build", str(recipe)], env)
    return took, stages(work / f"kiln-home-{n}"), env


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-", dir="/var/tmp"))
    try:
        examples = work / "examples"
        shutil.copytree(REPO / "examples", examples)
        recipe = examples / "recipes/debian-web.yaml"
        debs = work / "debs"
        debs.mkdir()
        # Warm the shared .deb cache (untimed): one Kiln build in a throwaway cache.
        warm_env = {"KILN_HOME": str(work / "warm-home"), "KILN_CACHE_DIR": str(work / "warm-cache")}
        timed([str(KILN), "build", str(recipe)], warm_env)
        for deb in (work / "warm-cache/debs").glob("*.deb"):
            os.link(deb, debs / deb.name)
        # Floor and cold build alternate, so both see the same mirror and machine conditions.
        floors, colds, breakdowns = [], [], []
        env: dict[str, str] = {}
        for n in range(rounds):
            floors.append(floor(work, debs, n))
            took, breakdown, env = cold_build(work, debs, recipe, n)
            colds.append(took)
            breakdowns.append(breakdown)
        figures: dict[str, float] = {
            "mmdebstrap (floor)": statistics.median(floors),
            "kiln build, cold": statistics.median(colds),
        }
        figures["kiln build, nothing changed"] = timed([str(KILN), "build", str(recipe)], env)
        edited = recipe.with_name("debian-web-edited.yaml")
        edited.write_text(recipe.read_text().replace("Hello from Kiln", "Hello again"))
        figures["kiln build, last component edited"] = timed([str(KILN), "build", str(edited)], env)

        base = figures["mmdebstrap (floor)"]
        cold = figures["kiln build, cold"]
        print(f"rounds: {rounds} (floor and cold alternate; medians below)")
        for n, (f, c) in enumerate(zip(floors, colds, strict=True)):
            print(f"  round {n + 1}: floor {f:6.2f}s  cold {c:6.2f}s  ratio {c / f:.2f}x")
        print(f"{'run':<36} {'seconds':>8} {'vs floor':>9} {'vs cold':>8}")
        for name, seconds in figures.items():
            print(f"{name:<36} {seconds:>8.2f} {seconds / base:>8.2f}x {seconds / cold:>7.0%}")
        print()
        print("cold build stages (median seconds):")
        for name in breakdowns[0]:
            print(f"  {name:<34} {statistics.median(b.get(name, 0.0) for b in breakdowns):>8.2f}")
        print()
        print(f"targets: cold <= 1.3x floor ({cold / base:.2f}x), no-op < 2 s "
              f"({figures['kiln build, nothing changed']:.2f} s), last-component edit <= 15% of cold "
              f"({figures['kiln build, last component edited'] / cold:.0%})")  # fmt: skip
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
