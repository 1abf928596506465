#!/usr/bin/env python3
"""`kiln toe run` of a 5-step component (3 ExecuteBash, CreateFile, Assert) against a cached Debian root.

Prints, over several runs (median): the whole `kiln toe run` process, the engine's own time (from
detailedoutput.json), and beside them the same three shell commands run by hand in one bubblewrap
sandbox over the same root (the floor: what the commands themselves cost).
Usage: .venv/bin/python bench/toe.py [--runs N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILN = REPO / ".venv/bin/kiln"
sys.path.insert(0, str(REPO))

DOCUMENT = """\
name: bench-five-steps
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: WhoAmI
        action: ExecuteBash
        inputs:
          commands: [id -u]
      - name: Configure
        action: CreateFile
        inputs:
          - path: /etc/bench.conf
            content: "answer = 42"
      - name: ReadBack
        action: ExecuteBash
        inputs:
          commands: [grep -c answer /etc/bench.conf]
      - name: Check
        action: Assert
        inputs:
          stringEquals: "1"
          value: "{{ build.ReadBack.outputs.stdout }}"
      - name: Release
        action: ExecuteBash
        inputs:
          commands: [". /etc/os-release && echo $VERSION_CODENAME"]
"""


def cached_root() -> Path:
    """The bookworm minbase parent from Kiln's cache (bootstrapped on first use)."""
    from kiln.monitor import ConsoleMonitor
    from kiln.rootfs.debian import DEFAULT_MIRRORS, DebianParent, ensure_parent
    from kiln.store import Store

    parent = DebianParent(distribution="debian", suite="bookworm", mirror=DEFAULT_MIRRORS["debian"])
    return ensure_parent(parent, Store.open(), ConsoleMonitor()).rootfs


def engine_seconds(log_dir: Path) -> float:
    detail = json.loads(next(log_dir.rglob("detailedoutput.json")).read_text())
    doc = detail["documents"][0]
    start = datetime.fromisoformat(str(doc["startTime"]).replace("Z", "+00:00"))
    end = datetime.fromisoformat(str(doc["endTime"]).replace("Z", "+00:00"))
    return (end - start).total_seconds()


def main() -> None:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
    root = cached_root()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-toe-") as tmp:
        doc = Path(tmp) / "five.yaml"
        doc.write_text(DOCUMENT)
        wall, engine, floor = [], [], []
        for n in range(runs):
            logs = Path(tmp) / f"logs-{n}"
            start = time.monotonic()
            subprocess.run(
                [str(KILN), "toe", "run", "--documents", str(doc), "--target", f"rootfs:{root}", "--scratch",
                 "--log-directory", str(logs), "-q"],
                check=True, capture_output=True,
            )  # fmt: skip
            wall.append(time.monotonic() - start)
            engine.append(engine_seconds(logs))
            start = time.monotonic()
            subprocess.run(
                ["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                 "--unshare-all", "bash", "-c",
                 "id -u; echo 'answer = 42' > /tmp/bench.conf; grep -c answer /tmp/bench.conf; "
                 ". /etc/os-release && echo $VERSION_CODENAME"],
                check=True, capture_output=True,
            )  # fmt: skip
            floor.append(time.monotonic() - start)
    print(f"kiln toe run, 5 steps, cached Debian root, {runs} runs (median, min-max):")
    for name, values in (
        ("whole `kiln toe run` process", wall),
        ("engine (detailedoutput.json)", engine),
        ("floor: same commands, one bwrap", floor),
    ):
        print(f"  {name:<34} {statistics.median(values):6.3f}s  ({min(values):.3f}-{max(values):.3f})")
    print(f"target: under 2 s excluding the commands' own work "
          f"({statistics.median(wall) - statistics.median(floor):.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
