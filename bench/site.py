"""Benchmark: what the site model in docs/scaling.md needs that bench/queue.py does not measure.

On a private PostgreSQL 15 server (tests/catalog/postgres.py) with pg_stat_statements loaded:

1. Idle cost: ``--workers`` real ``kiln worker`` processes, each with a data directory of its own,
   idle for ``--window`` seconds: database transactions and statements per second, PostgreSQL CPU
   seconds (the postmaster and its backends, from /proc) and worker CPU seconds, per worker per hour;
   connections and resident memory per worker; the statements that make up the polling. The same
   window with no worker first gives the server's own background cost, which is subtracted.
2. Real builds of the example image (examples/recipes/debian-web.yaml) queued with
   ``QueueExecutor.submit`` and run by one of those workers, with a shared file store
   (``KILN_STORE_URL``): bytes and objects it wrote to the store (blobs, OCI index, shipped log),
   catalog rows and bytes it added per table (Kiln's and Procrastinate's), transactions and statements
   it cost beyond idling, and its wall time; the second build of the same recipe shows what content
   addressing saves (its objects are already in the store).

Usage: .venv/bin/python bench/site.py [--workers 8] [--window 60] [--builds 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py must not shadow the standard library's queue module (psycopg imports it); the
# repository root gives kiln and tests.catalog.postgres.
REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if p not in ("", sys.path[0])]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from sqlalchemy import Engine, create_engine, text  # noqa: E402

from tests.catalog.postgres import PostgresServer, postgres_instance  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
DB = "site"
EXAMPLE = REPO / "examples/recipes/debian-web.yaml"
CACHE = Path(os.environ.get("KILN_TEST_CACHE", "/var/tmp/kiln-test-cache"))  # warm parents and .debs


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of ``pid`` (and of its children it has waited for)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return used / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu(server: PostgresServer) -> float:
    """CPU seconds of the whole server: the postmaster, the backends it has reaped, the live ones."""
    postmaster = int((server.base / "data/postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += cpu_seconds(int(stat.parent.name), children=False)
    return total


def backend_mib(site: Site) -> float:
    """Mean private memory (RssAnon) of the server's backends for this database."""
    with site.engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": DB}).scalars()
        sizes = []
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        sizes.append(int(line.split()[1]) / 1024)
    return sum(sizes) / len(sizes) if sizes else 0.0


@dataclass
class Sample:
    at: float
    xacts: int
    calls: int
    pg_cpu: float
    worker_cpu: float


class Site:
    def __init__(self, server: PostgresServer, work: Path) -> None:
        self.server, self.work = server, work
        self.url = server.url + DB
        self.engine: Engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.workers: list[subprocess.Popen[bytes]] = []
        self.store = work / "store"

    def sample(self) -> Sample:
        with self.engine.connect() as conn:
            xacts = conn.execute(text("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                      "WHERE datname = :d"), {"d": DB}).scalar_one()  # fmt: skip
            calls = conn.execute(text("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements")).scalar_one()
        worker_cpu = sum(cpu_seconds(w.pid) for w in self.workers)
        return Sample(time.monotonic(), int(xacts), int(calls), postgres_cpu(self.server), worker_cpu)

    def start_worker(self, n: int) -> None:
        env = {**os.environ, "KILN_HOME": str(self.work / f"worker{n}"), "KILN_DATABASE_URL": self.url,
               "KILN_STORE_URL": str(self.store), "KILN_CACHE_DIR": str(CACHE), "KILN_ACCEL": "tcg",
               "PYTHONPATH": str(REPO)}  # fmt: skip
        argv = [str(REPO / ".venv/bin/kiln"), "worker", "--capability", "amd64,disk>=1G"]
        log = open(self.work / f"worker{n}.log", "wb")  # open for the worker's lifetime
        self.workers.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))

    def live_workers(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one())

    def stop_workers(self) -> None:
        for w in self.workers:
            w.send_signal(signal.SIGTERM)
        for w in self.workers:
            w.wait(60)

    def table_sizes(self) -> dict[str, tuple[int, int]]:
        """Rows and bytes (sum of pg_column_size of each row) per table of the public schema."""
        with self.engine.connect() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            sizes = {}
            for table in tables:
                rows, size = conn.execute(
                    text(f'SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM "{table}" t')
                ).one()
                sizes[table] = (int(rows), int(size))
        return sizes

    def top_statements(self, limit: int) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT calls, query FROM pg_stat_statements s JOIN pg_database d "
                                     "ON d.oid = s.dbid WHERE d.datname = :d ORDER BY calls DESC LIMIT :n"),
                                {"d": DB, "n": limit}).all()  # fmt: skip
        return [(int(calls), " ".join(query.split())) for calls, query in rows]


def rates(before: Sample, after: Sample) -> dict[str, float]:
    """Transactions and statements per second, CPU seconds per hour, over ``before``..``after``."""
    span = after.at - before.at
    return {
        "xacts/s": (after.xacts - before.xacts) / span,
        "statements/s": (after.calls - before.calls) / span,
        "pg cpu s/h": (after.pg_cpu - before.pg_cpu) / span * 3600,
        "worker cpu s/h": (after.worker_cpu - before.worker_cpu) / span * 3600,
    }


def idle_cost(site: Site, workers: int, window: float) -> float:
    """Print the idle figures per worker; returns the idle transactions/s of all the workers."""
    with site.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))
    before = site.sample()
    time.sleep(window)
    background = rates(before, site.sample())
    print(f"no worker, {window:.0f} s: {background['xacts/s']:.2f} transactions/s, "
          f"{background['statements/s']:.2f} statements/s, "
          f"PostgreSQL {background['pg cpu s/h']:.1f} CPU s/h (its background work)")  # fmt: skip
    started = time.monotonic()
    for n in range(workers):
        site.start_worker(n)
    while site.live_workers() < workers:
        assert time.monotonic() - started < 180, "the workers did not start"
        time.sleep(0.5)
    print(f"{workers} kiln worker(s) registered in {time.monotonic() - started:.1f} s; settling 15 s")
    time.sleep(15)
    with site.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))
        connections = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND "
                                        "pid <> pg_backend_pid()"), {"d": DB}).scalar_one()  # fmt: skip
    before = site.sample()
    time.sleep(window)
    after = site.sample()
    busy = rates(before, after)
    each = {key: (value - background.get(key, 0.0)) / workers for key, value in busy.items()}
    rss = sum(rss_mib(w.pid) for w in site.workers) / workers
    print(f"idle, per worker ({window:.0f} s window, the no-worker background subtracted):")
    print(f"  {each['xacts/s']:.3f} transactions/s, {each['statements/s']:.3f} statements/s")
    print(f"  PostgreSQL CPU {each['pg cpu s/h']:.1f} s/h; kiln worker process CPU "
          f"{each['worker cpu s/h']:.1f} s/h")  # fmt: skip
    print(f"  {connections / workers:.1f} connections held; {rss:.0f} MiB resident; a PostgreSQL backend "
          f"{backend_mib(site):.1f} MiB of its own memory (RssAnon, mean)")  # fmt: skip
    with site.engine.connect() as conn:
        held = conn.execute(text("SELECT state, left(regexp_replace(query, '\\s+', ' ', 'g'), 70), count(*) "
                                 "FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid() "
                                 "GROUP BY 1, 2 ORDER BY 3 DESC"), {"d": DB}).all()  # fmt: skip
    for state, query, n in held:
        print(f"    {n / workers:4.1f} per worker  {state}: {query}")
    print("  statements by calls in the window:")
    for calls, query in site.top_statements(10):
        print(f"    {calls / (after.at - before.at) / workers:6.3f}/s per worker  {query[:110]}")
    return busy["xacts/s"]


def one_build(site: Site, window_rates: float, n: int) -> None:
    from kiln.catalog import Catalog
    from kiln.executors.queue import QueueExecutor
    from kiln.models import BuildRequest, RecipeSource
    from kiln.settings import Settings

    tables_before = site.table_sizes()
    store_before = {p: p.stat().st_size for p in site.store.rglob("*") if p.is_file()}
    with site.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_statements_reset()"))
    before = site.sample()
    executor = QueueExecutor(site.url, Settings())
    request = BuildRequest(recipe=RecipeSource.read(EXAMPLE), data_dir=site.work / "submitter")
    build_id = executor.submit(request).build_id
    with Catalog.open(site.url) as catalog:
        while (status := catalog.get_build(build_id).status) in ("queued", "running"):
            time.sleep(1)
    time.sleep(5)  # the job's end and the shipped log's last chunk
    after = site.sample()
    span = after.at - before.at
    what = (
        "first build" if n == 0 else f"build {n + 1} (the same recipe again: what content addressing saves)"
    )
    print(f"\n{what} of {EXAMPLE.relative_to(REPO)} through the queue: {status} in {span:.0f} s")
    assert status == "succeeded", f"the build {build_id} ended {status}: see {site.work}/worker*.log"
    idle_xacts = window_rates * span
    print(
        f"  database: {after.xacts - before.xacts} transactions in the window, "
        f"{after.xacts - before.xacts - idle_xacts:.0f} beyond the workers' idle polling; "
        f"{after.calls - before.calls} statements; PostgreSQL CPU {after.pg_cpu - before.pg_cpu:.1f} s"
    )
    top = site.top_statements(6)
    for calls, query in top:
        print(f"    {calls:6d}  {query[:110]}")
    new = {p: size for p in site.store.rglob("*") if p.is_file() and p not in store_before
           for size in [p.stat().st_size]}  # fmt: skip
    by_kind: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for path, size in new.items():
        kind = path.relative_to(site.store).parts[0]
        by_kind[kind] += size
        count[kind] += 1
    total = sum(new.values())
    print(f"  store: {total / 2**20:.1f} MiB in {len(new)} new objects: " + ", ".join(
        f"{kind}/ {by_kind[kind] / 2**20:.2f} MiB ({count[kind]})" for kind in sorted(by_kind)))  # fmt: skip
    tables_after = site.table_sizes()
    rows = bytes_ = 0
    print("  catalog rows (bytes) added, per table:")
    for table, (n, size) in sorted(tables_after.items()):
        n0, size0 = tables_before.get(table, (0, 0))
        if n != n0:
            rows, bytes_ = rows + n - n0, bytes_ + size - size0
            print(f"    {table:<28} {n - n0:6d} ({(size - size0) / 1024:8.1f} KiB)")
    print(f"  total: {rows} rows, {bytes_ / 1024:.1f} KiB of row data (indexes and page overhead excluded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--builds", type=int, default=2, help="example builds, one after the other (0: none)")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f}")
    from kiln.catalog import Catalog

    with postgres_instance() as server, tempfile.TemporaryDirectory(prefix="kiln-bench-site-") as tmp:
        admin = create_engine(server.url + "postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"))
            conn.execute(text(f"CREATE DATABASE {DB}"))
        admin.dispose()
        server.stop()
        server.start()
        site = Site(server, Path(tmp))
        with site.engine.connect() as conn:
            conn.execute(text("CREATE EXTENSION pg_stat_statements"))
            print(conn.execute(text("SHOW max_connections")).scalar_one(), "max_connections")
        Catalog.open(site.url).close()  # Kiln's schema and Procrastinate's
        try:
            idle = idle_cost(site, args.workers, args.window)
            for n in range(args.builds):
                one_build(site, idle, n)
        finally:
            site.stop_workers()
            site.engine.dispose()


if __name__ == "__main__":
    main()
