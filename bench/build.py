#!/usr/bin/env python3
"""Build benchmark: plain mmdebstrap (the floor) beside `kiln build` cold, no-op and last-component edit.

Every run shares one warm .deb cache, so the figures compare work done, not download speed.
Usage: .venv/bin/python bench/build.py [--keep]
"""

from __future__ import annotations

import os
import shutil
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


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    took = time.monotonic() - start
    print(f"  {took:7.2f}s  {' '.join(argv[:3])}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took


def floor(work: Path, debs: Path) -> float:
    """mmdebstrap of the same package set with the same shared .deb cache."""
    target = work / "floor-root"
    return timed([
        "mmdebstrap", "--variant=minbase", "--mode=root", "--skip=essential/unlink",
        "--skip=cleanup/apt/cache", f"--include={PACKAGES}",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
        "bookworm", str(target), *SOURCES,
    ])  # fmt: skip


def main() -> None:
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
        figures: dict[str, float] = {}
        figures["mmdebstrap (floor)"] = floor(work, debs)
        cache = work / "kiln-cache"
        (cache / "debs").mkdir(parents=True)
        for deb in debs.glob("*.deb"):
            os.link(deb, cache / "debs" / deb.name)
        env = {"KILN_HOME": str(work / "kiln-home"), "KILN_CACHE_DIR": str(cache)}
        figures["kiln build, cold"] = timed([str(KILN), "build", str(recipe)], env)
        figures["kiln build, nothing changed"] = timed([str(KILN), "build", str(recipe)], env)
        edited = recipe.with_name("debian-web-edited.yaml")
        edited.write_text(recipe.read_text().replace("Hello from Kiln", "Hello again"))
        figures["kiln build, last component edited"] = timed([str(KILN), "build", str(edited)], env)

        base = figures["mmdebstrap (floor)"]
        cold = figures["kiln build, cold"]
        print(f"{'run':<36} {'seconds':>8} {'vs floor':>9} {'vs cold':>8}")
        for name, seconds in figures.items():
            print(f"{name:<36} {seconds:>8.2f} {seconds / base:>8.2f}x {seconds / cold:>7.0%}")
        print()
        print(f"targets: cold <= 1.3x floor ({cold / base:.2f}x), no-op < 2 s "
              f"({figures['kiln build, nothing changed']:.2f} s), last-component edit <= 15% of cold "
              f"({figures['kiln build, last component edited'] / cold:.0%})")  # fmt: skip
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
