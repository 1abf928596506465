"""Benchmark: the build queue on a private PostgreSQL server on this machine.

1. Procrastinate alone: ``--jobs`` no-op jobs deferred as fast as one client can (one transaction each)
   into ``--workers`` worker processes (1, 2, 4, 8 by default): jobs/s end to end and the queue latency
   (deferred → started, from Procrastinate's own event timestamps), p50/p99/max.
2. Kiln's submit: ``QueueExecutor.submit`` (recipe validated, build row + job row + Procrastinate job in
   one transaction) per second, and submit → claimed (build ``running``) with one real ``kiln worker``
   idle on LISTEN/NOTIFY, each build cancelled as soon as it is claimed.
3. The floor: the local executor (SQLite, no queue) submit → build recorded running, a child process
   per build, each cancelled at once.

Usage: .venv/bin/python bench/queue.py [--jobs 2000] [--workers 1,2,4,8] [--samples 10]
"""

from __future__ import annotations

import sys

# This file is named queue.py: its folder must not shadow the standard library's queue module.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rpartition("/")[0])]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402

if TYPE_CHECKING:
    from kiln.models import BuildRequest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TASK = "bench.noop"
QUEUE = "bench"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1000:7.1f} ms  p99 {pct(values, 99) * 1000:7.1f} ms  "
            f"max {max(values) * 1000:7.1f} ms")  # fmt: skip


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh database: in ``url``'s server, else in a private server started here."""
    if url:
        yield url
        return
    from tests.catalog.postgres import create_database, postgres_server

    with postgres_server() as server:
        yield create_database(server, "bench")


def worker_main(url: str) -> None:
    """A Procrastinate worker process running the no-op task (``--role worker``)."""
    from kiln.executors.queue import make_app

    app = make_app(url, asynchronous=True)

    @app.task(name=TASK)
    async def noop() -> None:
        return None

    async def run() -> None:
        async with app.open_async():
            await app.run_worker_async(queues=[QUEUE], concurrency=1, wait=True, install_signal_handlers=True)

    asyncio.run(run())


def clear(url: str) -> None:
    with create_engine(url).begin() as conn:
        conn.execute(text("DELETE FROM procrastinate_jobs WHERE task_name = :t"), {"t": TASK})


def live_workers(url: str) -> int:
    with create_engine(url).connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar() or 0)


def defer_all(url: str, jobs: int) -> float:
    """Defer ``jobs`` no-op jobs one transaction each; returns the seconds it took."""
    from kiln.executors.queue import make_app

    app = make_app(url, asynchronous=False)
    with app.open():
        deferrer = app.configure_task(TASK, queue=QUEUE)
        started = time.monotonic()
        for _ in range(jobs):
            deferrer.defer()
        return time.monotonic() - started


def procrastinate_run(url: str, jobs: int, workers: int, *, backlog: bool) -> None:
    """``backlog``: every job deferred before the workers start (their drain rate alone), else
    deferred while they run (end-to-end rate and deferred → started latency)."""
    clear(url)
    deferred = defer_all(url, jobs) if backlog else 0.0
    before = live_workers(url)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--role", "worker", "--url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + 60
        while live_workers(url) < before + workers:
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        if not backlog:
            deferred = defer_all(url, jobs)
        engine = create_engine(url)
        while True:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t AND "
                                         "status = 'succeeded'"), {"t": TASK}).scalar()  # fmt: skip
            if done == jobs:
                break
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(text("""
                SELECT extract(epoch FROM s.at - d.at), extract(epoch FROM e.at)
                  FROM procrastinate_jobs j
                  JOIN procrastinate_events d ON d.job_id = j.id AND d.type = 'deferred'
                  JOIN procrastinate_events s ON s.job_id = j.id AND s.type = 'started'
                  JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'succeeded'
                 WHERE j.task_name = :t"""), {"t": TASK}).all()  # fmt: skip
            since = {"t": TASK, "first": "started" if backlog else "deferred"}
            first = conn.execute(text("SELECT extract(epoch FROM min(d.at)) FROM procrastinate_events d JOIN "
                                      "procrastinate_jobs j ON j.id = d.job_id WHERE j.task_name = :t AND "
                                      "d.type = :first"), since).scalar()  # fmt: skip
        engine.dispose()
        latency = [float(r[0]) for r in rows]
        span = max(float(r[1]) for r in rows) - float(first)
        if backlog:
            print(f"  {workers} worker(s): {jobs / span:6.0f} jobs/s draining a backlog ({span:.1f} s)")
            return
        print(f"  {workers} worker(s): {jobs / span:6.0f} jobs/s end to end ({jobs} in {span:.1f} s; "
              f"deferred at {jobs / deferred:.0f}/s); deferred → started {ms(latency)}")  # fmt: skip
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


def request_for(folder: Path, name: str) -> BuildRequest:
    from kiln.models import BuildRequest, RecipeSource
    from tests.documents import sleep_component, write_recipe

    recipe = write_recipe(folder, name, "motd.yaml", sleep_component(600, name="motd"))
    return BuildRequest(recipe=RecipeSource.read(recipe), data_dir=folder)


def kiln_submit(url: str, samples: int, tmp: Path) -> None:
    from kiln.catalog import Catalog
    from kiln.executors.queue import QueueExecutor
    from kiln.settings import Settings

    executor = QueueExecutor(url, Settings())
    waiting = []
    started = time.monotonic()
    for n in range(200):  # arm64: nobody takes them; only the submit transaction is timed
        request = request_for(tmp / f"s{n}", f"sub{n}").model_copy(update={"requires": ["arm64"]})
        waiting.append(executor.submit(request).build_id)
    elapsed = time.monotonic() - started
    print(f"  QueueExecutor.submit: {200 / elapsed:.0f}/s ({elapsed / 200 * 1000:.1f} ms each, recipe "
          "validated, three rows in one transaction)")  # fmt: skip
    for build_id in waiting:
        executor.cancel(build_id)

    home = tmp / "worker"
    env = {**os.environ, "KILN_HOME": str(home), "KILN_DATABASE_URL": url, "KILN_ACCEL": "tcg"}
    argv = [str(REPO / ".venv/bin/kiln"), "worker", "--capability", "amd64,disk>=1G"]
    worker = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        latency = []
        with Catalog.open(url) as catalog:
            for n in range(samples):
                request = request_for(tmp / f"w{n}", f"claim{n}")
                t0 = time.monotonic()
                build_id = executor.submit(request).build_id
                while catalog.get_build(build_id).status == "queued":
                    time.sleep(0.005)
                latency.append(time.monotonic() - t0)
                executor.cancel(build_id)
                while catalog.get_build(build_id).status == "running":
                    time.sleep(0.05)
        print(f"  submit → claimed by an idle kiln worker ({samples} builds): {ms(latency)}")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def local_floor(samples: int, tmp: Path) -> None:
    from kiln.catalog import Catalog
    from kiln.executors.local import LocalExecutor
    from kiln.settings import Settings
    from kiln.store import Store

    store = Store.open(tmp / "local", Settings())
    executor = LocalExecutor(store, Settings())
    latency = []
    with Catalog.open(store.database_url) as catalog:
        for n in range(samples):
            request = request_for(tmp / f"l{n}", f"local{n}").model_copy(update={"data_dir": store.home})
            t0 = time.monotonic()
            build_id = executor.submit(request).build_id
            latency.append(time.monotonic() - t0)
            executor.cancel(build_id)
            while catalog.get_build(build_id).status == "running":
                time.sleep(0.05)
    print(f"  local executor submit → build running ({samples} builds, a process each): {ms(latency)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=["bench", "worker"], default="bench")
    parser.add_argument("--url", help="a PostgreSQL database to use (default: a private server)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    if args.role == "worker":
        worker_main(args.url)
        return
    from kiln.catalog import Catalog

    print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f}")
    with database(args.url) as url, tempfile.TemporaryDirectory(prefix="kiln-bench-queue-") as tmp:
        with Catalog.open(url):
            pass  # Kiln's schema and Procrastinate's
        counts = [int(w) for w in args.workers.split(",")]
        print(f"Procrastinate, {args.jobs} no-op jobs deferred while the workers run:")
        for workers in counts:
            procrastinate_run(url, args.jobs, workers, backlog=False)
        print(f"Procrastinate, a backlog of {args.jobs} no-op jobs:")
        for workers in counts:
            procrastinate_run(url, args.jobs, workers, backlog=True)
        print("Kiln's queue path:")
        kiln_submit(url, args.samples, Path(tmp))
        print("Floor, the local executor (SQLite):")
        local_floor(args.samples, Path(tmp))


if __name__ == "__main__":
    main()
