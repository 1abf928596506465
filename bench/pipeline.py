#!/usr/bin/env python3
"""Pipeline daemon benchmark: the idle CPU of ``kiln daemon`` with 50 pipelines applied (target < 1%),
side by side with a floor: the same Python interpreter sleeping in a loop (what any resident Python
process costs). Pipelines: daily schedules spread over the day in Europe/Berlin, half of them
``when: updates-available``, a cascade of parent images (every fifth builds on the one before). No
schedule is due while measuring, so the daemon only evaluates triggers and polls the catalog.
Then (``--part updates``, bench/pipeline_updates.py) the "updates available?" check for an image with
300 packages against a full bookworm Packages index (target < 1 s with the index cached).
Usage: .venv/bin/python bench/pipeline.py [--part all|idle|updates] [--pipelines 50] [--seconds 60] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILN = REPO / ".venv/bin/kiln"
TICKS = os.sysconf("SC_CLK_TCK")
COMPONENT = """\
name: marker
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Marker
        action: CreateFile
        inputs:
          - path: /etc/kiln-marker
            content: here
"""


def write_pipelines(folder: Path, count: int) -> Path:
    """``count`` pipelines whose schedules stay away from the next hour (nothing fires while measuring)."""
    pipelines, recipes = folder / "pipelines", folder / "recipes"
    pipelines.mkdir(parents=True)
    recipes.mkdir()
    (recipes / "marker.yaml").write_text(COMPONENT)
    quiet_hour = (datetime.now(UTC) + timedelta(hours=3)).hour
    for i in range(count):
        parent = f"kiln:p{i - 1:02d}@1.x" if i % 5 and i else "debian:bookworm"
        (recipes / f"p{i:02d}.yaml").write_text(
            f"name: p{i:02d}\nversion: 1.0.0\nparent: {{image: '{parent}'}}\n"
            "components:\n  - path: marker.yaml\n"
        )
        when = "updates-available" if i % 2 else "always"
        (pipelines / f"p{i:02d}.yaml").write_text(
            f"name: p{i:02d}\nrecipe: ../recipes/p{i:02d}.yaml\nschedule: {i % 60} {quiet_hour} * * *\n"
            f"timezone: UTC\nwhen: {when}\ntriggers: [parent, manual, cve]\n"
        )
    return pipelines


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--part", choices=("all", "idle", "updates"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "updates"):
        import pipeline_updates  # bench/ is on sys.path when this script runs

        pipeline_updates.run()
        if args.part == "updates":
            return
    folder = Path(tempfile.mkdtemp(prefix="kiln-bench-pipeline-"))
    env = {**os.environ, "KILN_HOME": str(folder / "home"), "KILN_CACHE_DIR": str(folder / "cache")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pipelines = write_pipelines(folder, args.pipelines)
        subprocess.run(
            [str(KILN), "pipelines", "apply", str(pipelines)], env=env, check=True, stdout=subprocess.DEVNULL
        )
        log = open(folder / "daemon.log", "wb")  # closed when the daemon ends
        daemon = subprocess.Popen([str(KILN), "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        floor = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(15)"])
        procs += [daemon, floor]
        deadline = time.monotonic() + 60
        while b"kiln daemon started" not in (folder / "daemon.log").read_bytes():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("the daemon did not start:\n" + (folder / "daemon.log").read_text())
            time.sleep(0.2)
        time.sleep(2)  # past start-up (imports, catalog open, first evaluation)
        before = cpu_seconds(daemon.pid)
        floor_before = cpu_seconds(floor.pid)
        start = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - start
        daemon_pct = 100 * (cpu_seconds(daemon.pid) - before) / wall
        floor_pct = 100 * (cpu_seconds(floor.pid) - floor_before) / wall
        print(f"idle CPU over {wall:.0f} s with {args.pipelines} pipelines applied (percent of one core)")
        print(f"{'process':<40} {'CPU %':>8}")
        print(f"{'kiln daemon':<40} {daemon_pct:>8.3f}")
        print(f"{'floor: python sleeping in a loop':<40} {floor_pct:>8.3f}")
        print(f"target < 1%: {'met' if daemon_pct < 1 else 'NOT met'}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
