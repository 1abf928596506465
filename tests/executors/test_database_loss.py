"""A worker whose database goes away stops taking jobs, waits with back-off instead of dying, takes
jobs again once the database is back, and still stops at once on SIGTERM while it waits. A private
PostgreSQL server of its own (stopped and started by the test)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildRequest
from kiln.settings import Settings
from tests.catalog.postgres import PostgresServer, create_database, find_tool, postgres_instance
from tests.executors.test_queue import MOTD, Workers, recipe, status, wait_for


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    if not (find_tool("initdb") and find_tool("pg_ctl")):
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql; make deps)")
    with postgres_instance() as pg:
        with Catalog.open(create_database(pg.url, "kiln")):
            pass
        yield pg


def log_of(root: Path, name: str) -> str:
    return (root / f"{name}.log").read_text(errors="replace")


@pytest.mark.e2e
def test_worker_outlives_the_database(server: PostgresServer, tmp_path: Path) -> None:
    url = server.url + "kiln"
    workers = Workers(url, tmp_path / "workers")
    try:
        proc = workers.start("w")
        server.stop()
        lost = time.monotonic()
        wait_for(lambda: "worker stopped taking jobs" in log_of(workers.root, "w"), 60, "the worker notices")
        print(f"database stopped to worker noticing: {time.monotonic() - lost:.1f}s")
        wait_for(
            lambda: "database unreachable at 127.0.0.1:" in log_of(workers.root, "w"), 30, "it backs off"
        )
        time.sleep(5)
        assert proc.poll() is None, log_of(workers.root, "w")[-3000:]

        server.start()
        back = time.monotonic()
        wait_for(lambda: "the database answers again" in log_of(workers.root, "w"), 60, "it reconnects")
        print(f"database started to worker taking jobs again: {time.monotonic() - back:.1f}s")
        source = recipe(tmp_path / "r", "after-outage", "motd.yaml", MOTD)
        build_id = (
            QueueExecutor(url, Settings()).submit(BuildRequest(recipe=source, data_dir=tmp_path)).build_id
        )
        wait_for(lambda: status(url, build_id) in ("succeeded", "failed"), 300, "the build ends")
        with Catalog(url) as catalog:
            assert catalog.get_build(build_id).status == "succeeded", catalog.get_build(build_id).error
            assert [w.pid for w in jobs.live_workers(catalog)] == [proc.pid]  # heartbeating again

        server.stop()  # and a stop while it waits for the database is a clean stop
        wait_for(lambda: log_of(workers.root, "w").count("worker stopped taking jobs") == 2, 60,
                 "it notices again")  # fmt: skip
        wait_for(lambda: log_of(workers.root, "w").split("answers again")[-1].count("database unreachable at") >= 2,
                 30, "it backs off again")  # fmt: skip
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        print(f"SIGTERM during the back-off to exit: {time.monotonic() - asked:.1f}s")
    finally:
        workers.stop_all()
