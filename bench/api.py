#!/usr/bin/env python3
"""API benchmark: p50/p99 latency of GET /api/v1/images?package=openssl and of an image page, on a
generated catalog of 2,000 image versions, with 20 concurrent clients for 30 s each, on loopback;
then the API call uncached (one client, each request right after another process's commit).

The floor is a static file served by the same server (same clients, same connection reuse), measured
in the same run, so the figures show what the catalog query and rendering add. Every image carries
~150 packages (openssl and libssl3 among them, so the package query matches every image; the API
returns the first page of 50). Requests are authenticated with a real token (the API) and a session
cookie (the page). The load comes from wrk when it is installed (`apt-get install wrk`: one C thread;
the Python generator, kept as the fallback, needs about as much CPU as the server it measures), after
a few seconds of the same load that are not counted (every server process fills its cache).
Usage: .venv/bin/python bench/api.py [--images 2000] [--clients 20] [--seconds 30] [--rounds N]
       [--workers N] [--generator auto|wrk|python] [--server-source DIR] [--keep]

Measured on 2 CPUs shared with other jobs (README, "bench/api.py"), five rounds, 2 processes, wrk,
load 2.8-6.9: API p99 39-87 ms, page p99 90-612 ms (over 250 ms in two rounds: other jobs' bursts;
3 ms cached, 40 ms uncached), floor p99 70-77 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(REPO)  # not bench/, whose queue.py would shadow the standard library's (anyio needs it)

from kiln.access.secret import server_secret  # noqa: E402
from kiln.access.tokens import create_token  # noqa: E402
from kiln.api.server import DEFAULT_WORKERS  # noqa: E402
from kiln.catalog import Catalog, ComponentRecord, EvidenceRecord, NewImage, PackageRecord  # noqa: E402
from kiln.catalog.models import BuildRow  # noqa: E402
from kiln.catalog.records import image_row  # noqa: E402
from kiln.store import Store  # noqa: E402

NAMES = 100  # image names; each with images // NAMES versions


def packages(i: int) -> list[PackageRecord]:
    ssl = f"3.0.{11 + i % 5}-1~deb12u{1 + i % 3}"
    base = [
        PackageRecord(name=n, version=ssl, architecture="amd64", source="openssl", source_version=ssl)
        for n in ("openssl", "libssl3")
    ]
    filler = [
        PackageRecord(
            name=f"pkg{j:03d}",
            version=f"1.{j}.{i % 7}-1",
            architecture="amd64",
            source=f"src{j // 3:03d}",
            source_version=f"1.{j}.{i % 7}-1",
        )
        for j in range(148)
    ]
    return base + filler


def generate(home: Path, count: int) -> tuple[str, str]:
    """Write ``count`` image versions (one build each) straight into the catalog; returns (token, a ref)."""
    store = Store.open_at(home, home / "cache")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with Catalog.open(store.database_url) as catalog:
        with catalog.session(write=True) as s, s.begin():
            for i in range(count):
                name, minor = f"team{i % NAMES:03d}-image", i // NAMES
                when = start + timedelta(minutes=i)
                build_id = uuid.uuid4().hex
                s.add(
                    BuildRow(
                        id=build_id,
                        recipe_name=name,
                        recipe_version=f"1.{minor}.0",
                        recipe_path="/r.yaml",
                        status="succeeded",
                        started=when,
                        finished=when + timedelta(minutes=3),
                        log_path=str(home / "logs" / f"{build_id}.jsonl"),
                        error=None,
                        host="bench",
                        pid=1,
                        pid_start=None,
                    )
                )
                summary = {"vulnerabilities": 3, "fixable": 2, "by_severity": {"high": 1, "medium": 2}}
                image = NewImage(
                    name=name,
                    version=f"1.{minor}.0",
                    digest=f"sha256:{i:064x}",
                    created=when,
                    parent="debian:bookworm" if minor == 0 else f"{name}@1.{minor - 1}.0/1",
                    description="bench",
                    size=50_000_000 + i,
                    packages=packages(i),
                    components=[
                        ComponentRecord(name="hardening", version="1.0.0", digest="sha256:" + "a" * 64)
                    ],
                    evidence=[
                        EvidenceRecord(
                            kind="vulnerability-report",
                            path="x",
                            digest="sha256:" + "b" * 64,
                            summary=summary,
                        )
                    ],
                )
                s.add(image_row(image, build_id=build_id, build_number=1, recorded=when))
        token, _ = create_token(catalog, server_secret(store.home), "bench", ["images:read"], None)
    return token, f"team042-image/1.{count // NAMES // 2}.0/1"


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50: float  # ms
    p99: float
    errors: int


async def _load(url: str, clients: int, seconds: float, headers: dict[str, str]) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                began = time.perf_counter()
                try:
                    response = await http.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - began)
                errors += not ok

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors


def python_load(url: str, clients: int, seconds: float, headers: dict[str, str]) -> Result:
    """The fallback generator: httpx clients in this process (it needs about as much CPU as the
    server, which it shares the machine with)."""
    latencies, errors = asyncio.run(_load(url, clients, seconds, headers))
    return Result(len(latencies), seconds, quantile(latencies, 50), quantile(latencies, 99), errors)


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_load(url: str, clients: int, seconds: float, headers: dict[str, str]) -> Result:
    """wrk (Debian's ``wrk``; one event-loop thread in C): ``clients`` keep-alive connections, each
    sending its next request when the last is answered, like the Python generator, for a fraction of
    its CPU. Errors: socket errors, timeouts (2 s) and 4xx/5xx answers (a page's redirect to /login is
    ruled out by the 200 each target is checked for first)."""
    args = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:.0f}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    quantiles = {q: float(v) * WRK_UNITS[unit] for q, v, unit in WRK_LATENCY.findall(out)}
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if done is None or set(quantiles) != {"50", "99"}:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad[1]) if bad else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Result(int(done[1]), seconds, quantiles["50"], quantiles["99"], errors)


def cold(url: str, headers: dict[str, str], home: Path, count: int) -> tuple[list[float], int]:
    """One client, each request right after a commit of another process (so never from the cache):
    what the query itself costs."""
    latencies: list[float] = []
    errors = 0
    with sqlite3.connect(home / "catalog.db") as db, httpx.Client(headers=headers, timeout=30) as http:
        for _ in range(count):
            db.execute("UPDATE builds SET pid = pid + 1 WHERE rowid = (SELECT min(rowid) FROM builds)")
            db.commit()
            began = time.perf_counter()
            errors += http.get(url).status_code != 200
            latencies.append(time.perf_counter() - began)
    return latencies, errors


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def serve(home: Path, port: int, workers: int, source: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln.cli.main", "serve", "--port", str(port), "--workers", str(workers),
         "--data-dir", str(home)],
        env={**os.environ, "PYTHONPATH": str(source)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/style.css", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(
                    f"kiln serve failed: {proc.stderr.read().decode() if proc.stderr else ''}"
                ) from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("kiln serve did not start")


def row(label: str, r: Result) -> str:
    return (
        f"{label:<24} {r.requests:>9} {r.requests / r.seconds:>8.1f} {r.p50:>8.1f} {r.p99:>8.1f} "
        f"{r.errors:>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before each measurement")
    parser.add_argument("--rounds", type=int, default=1, help="measure the three targets this many times")
    parser.add_argument("--port", type=int, default=18440)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="kiln serve --workers")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator (auto: wrk when installed)")  # fmt: skip
    parser.add_argument("--cold", type=int, default=60, help="uncached API requests (one after each commit)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data dir")
    parser.add_argument("--server-source", type=Path, default=REPO,
                        help="serve the kiln package in this tree (say, an older commit)")  # fmt: skip
    args = parser.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    load = wrk_load if generator == "wrk" else python_load
    home = Path(tempfile.mkdtemp(prefix="kiln-bench-api-"))
    print(
        f"{args.images} image versions, {args.clients} clients, {args.seconds:.0f} s per target, "
        f"{args.workers} server process(es), generator {generator}, {os.cpu_count()} CPUs"
    )
    try:
        began = time.monotonic()
        token, ref = generate(home, args.images)
        print(
            f"generated {args.images} image versions in {time.monotonic() - began:.1f}s ({home})",
            file=sys.stderr,
        )
        proc = serve(home, args.port, args.workers, args.server_source)
        try:
            base = f"http://127.0.0.1:{args.port}"
            bearer = f"Bearer {token}"
            targets = [
                ("floor: static file", f"{base}/static/style.css", {}),
                ("API ?package=openssl", f"{base}/api/v1/images?package=openssl", {"Authorization": bearer}),
                ("image page", f"{base}/images/{ref}", {"Cookie": f"kiln_session={token}"}),
            ]
            for round_ in range(1, args.rounds + 1):
                print(f"round {round_}: load {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)")
                print(
                    f"{'target':<24} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
                )
                for label, url, headers in targets:
                    assert httpx.get(url, headers=headers).status_code == 200, url
                    if args.warmup:  # every server process has its answer cached, its templates compiled
                        load(url, args.clients, args.warmup, headers)
                    print(row(label, load(url, args.clients, args.seconds, headers)), flush=True)
            api = f"{base}/api/v1/images?package=openssl"
            latencies, errors = cold(api, {"Authorization": bearer}, home, args.cold)
            p50, p99 = quantile(latencies, 50), quantile(latencies, 99)
            uncached = Result(len(latencies), sum(latencies), p50, p99, errors)
            print(row("API uncached, 1 client", uncached), flush=True)
            print(f"load at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("KILN_HOME", None)
    main()
