"""Benchmark: import of a full-size Debian Security Tracker JSON and scan of a ~300-package image.

The real tracker JSON (~100k CVE x source-package entries) cannot be downloaded on this machine, so a
SYNTHETIC one of the same size and shape is generated (seeded, reproducible): Zipf-distributed CVE
counts per source package, 5 releases per entry, a realistic mix of statuses and urgencies.
The scanned image is a root directory with a synthetic dpkg status of 300 binary packages (from
~150 source packages of the tracker, biased toward CVE-heavy ones), plus the real minbase root when
available. Usage: .venv/bin/python bench/scan.py [--entries 100000] [--packages 300]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnimport import import_feed
from kiln.evidence.vulnscan import scan_root
from kiln.monitor import ListMonitor
from kiln.store import Store

RELEASES = ("bullseye", "bookworm", "trixie", "forky", "sid")
URGENCIES = ("unimportant", "low", "low**", "medium", "medium**", "high", "high**", "not yet assigned")
LOREM = (
    "A flaw was found in the parsing code which allows a remote attacker to cause a denial of service "
    "or possibly execute arbitrary code via a crafted input file, because a length check is missing."
)


def synthetic_tracker(
    entries: int, rng: random.Random
) -> tuple[dict[str, dict[str, object]], dict[str, int]]:
    sources = 6000
    weights = [1 / (i + 1) ** 0.9 for i in range(sources)]
    scale = entries / sum(weights)
    tracker: dict[str, dict[str, object]] = {}
    counts: dict[str, int] = {}
    cve = 0
    for i, w in enumerate(weights):
        name = f"src{i:04d}"
        n = max(1, round(w * scale))
        vulns: dict[str, object] = {}
        for _ in range(n):
            cve += 1
            releases = {}
            for rel in RELEASES:
                roll = rng.random()
                urgency = rng.choice(URGENCIES)
                info: dict[str, object] = {"repositories": {rel: "1.0-1"}, "urgency": urgency}
                if roll < 0.60:  # fixed before the installed 2.0-1
                    info |= {
                        "status": "resolved",
                        "fixed_version": f"1.{rng.randint(0, 9)}-{rng.randint(1, 5)}",
                    }
                elif roll < 0.62:  # fixed after it: a fixable finding
                    info |= {"status": "resolved", "fixed_version": f"2.0-1+deb12u{rng.randint(1, 9)}"}
                elif roll < 0.75:
                    info |= {"status": "resolved", "fixed_version": "0"}
                elif roll < 0.95:
                    info["status"] = "open"
                    if rng.random() < 0.5:
                        info |= {
                            "nodsa": "Minor issue",
                            "nodsa_reason": rng.choice(["", "postponed", "ignored"]),
                        }
                else:
                    info["status"] = "undetermined"
                releases[rel] = info
            vulns[f"CVE-{2000 + cve % 26}-{cve:06d}"] = {
                "description": LOREM,
                "scope": "remote",
                "releases": releases,
            }
        tracker[name] = vulns
        counts[name] = n
    return tracker, counts


def synthetic_root(root: Path, counts: dict[str, int], packages: int, rng: random.Random, heavy: int) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    names = sorted(counts, key=lambda n: -counts[n])
    # The `heavy` most CVE-laden sources (the kernel's role in a VM image) + a uniform sample of the rest.
    chosen = names[:heavy] + rng.sample(names[heavy:], packages // 2 - heavy)
    paras = []
    for i in range(packages):
        src = chosen[i % len(chosen)]
        version = "2.0-1"
        paras.append(
            f"Package: bin{i:03d}-{src}\nStatus: install ok installed\nArchitecture: amd64\n"
            f"Source: {src}\nVersion: {version}\nInstalled-Size: 100\n"
        )
    (root / "var/lib/dpkg/status").write_text("\n".join(paras))


def timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    results, times = None, []
    for _ in range(repeat):
        start = time.perf_counter()
        results = fn()
        times.append(time.perf_counter() - start)
    return results, times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--real-root", type=Path, default=None, help="also scan this real root")
    args = parser.parse_args()
    rng = random.Random(20261123)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-") as tmp:
        tmpdir = Path(tmp)
        tracker, counts = synthetic_tracker(args.entries, rng)
        feed = tmpdir / "json.gz"
        feed.write_bytes(gzip.compress(json.dumps(tracker).encode(), compresslevel=6))
        raw = len(json.dumps(tracker))
        entries = sum(counts.values())
        store = Store.open(tmpdir / "home")
        info, import_times = timed(lambda: import_feed(store, str(feed), ListMonitor()))
        print(
            f"tracker JSON (synthetic): {len(counts)} source packages, {entries} CVE x package entries, "
            f"{raw / 1e6:.1f} MB raw, {feed.stat().st_size / 1e6:.1f} MB gzip"
        )
        print(
            f"import: {import_times[0]:.2f} s ({info.records} release records, "
            f"db {(store.home / 'vulndb.sqlite').stat().st_size / 1e6:.1f} MB)"
        )
        db = VulnDb.open(store)
        for label, heavy in (("typical: 1 heavy source", 1), ("worst case: 20 heaviest sources", 20)):
            root = tmpdir / f"root-{heavy}"
            synthetic_root(root, counts, args.packages, rng, heavy)
            scan_root(root, db)  # warm the OS page cache, as on a build machine
            cpu_start = time.process_time()
            report, times = timed(lambda root=root: scan_root(root, db), repeat=7)  # type: ignore[misc]
            cpu = (time.process_time() - cpu_start) / 7
            median = statistics.median(times)
            print(
                f"scan of a {report.packages}-package image ({label}): median {median:.3f} s wall, "
                f"{cpu:.3f} s CPU, {len(report.findings)} findings (target < 0.5 s)"
            )
        if args.real_root:
            real, real_times = timed(lambda: scan_root(args.real_root, db), repeat=7)
            median = statistics.median(real_times)
            print(f"scan of the real root ({real.packages} packages): median {median:.3f} s")


if __name__ == "__main__":
    main()
