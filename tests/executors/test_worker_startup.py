"""``kiln worker`` started before its database: it waits with back-off (saying where and why), stops at
once on SIGTERM while it waits, and takes jobs as soon as the database appears."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildRequest
from kiln.settings import Settings
from tests.catalog.postgres import PostgresServer, find_tool, postgres_instance
from tests.executors.test_queue import KILN, MOTD, env_for, recipe, status, wait_for
from tests.loopback import free_port


def start_worker(url: str, home: Path, log: Path) -> subprocess.Popen[bytes]:
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(KILN), "worker", "--capability", "amd64,disk>=1G", "--stalled-after", "3"],
            env=env_for(url, home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stopped_server() -> Iterator[PostgresServer]:
    """A private server with an empty database ``kiln`` (no schema yet), stopped."""
    if not (find_tool("initdb") and find_tool("pg_ctl")):
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql; make deps)")
    with postgres_instance() as pg:
        admin = create_engine(pg.url + "postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE kiln"))
        admin.dispose()
        pg.stop()
        yield pg


def test_worker_waiting_for_its_database_stops_at_once_on_sigterm(tmp_path: Path) -> None:
    port = free_port()  # nobody listens there
    log = tmp_path / "worker.log"
    proc = start_worker(f"postgresql://kiln@127.0.0.1:{port}/kiln", tmp_path / "home", log)
    try:
        wait_for(lambda: log.read_text().count("database unreachable") >= 2, 30, "it retries")
        text_ = log.read_text()
        assert re.search(rf"database unreachable at 127\.0\.0\.1:{port}: .*refused.*; retrying in 1s", text_)
        assert f"127.0.0.1:{port}: " in text_ and "retrying in 2s" in text_, text_  # the back-off doubles
        assert proc.poll() is None and "Traceback" not in text_
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - asked < 3
    finally:
        stop(proc)


@pytest.mark.e2e
def test_worker_started_before_its_database_takes_jobs_once_it_appears(
    stopped_server: PostgresServer, tmp_path: Path
) -> None:
    url = stopped_server.url + "kiln"
    log = tmp_path / "worker.log"
    proc = start_worker(url, tmp_path / "worker", log)
    try:
        wait_for(lambda: f"database unreachable at 127.0.0.1:{stopped_server.port}" in log.read_text(), 30,
                 "the worker says it waits")  # fmt: skip
        time.sleep(2)
        assert proc.poll() is None, log.read_text()[-3000:]

        stopped_server.start()
        appeared = time.monotonic()

        def registered() -> bool:
            with Catalog(url) as catalog:
                try:
                    return [w.pid for w in jobs.live_workers(catalog)] == [proc.pid]
                except Exception:  # the worker has not made the schema yet
                    return False

        wait_for(registered, 60, "the worker registers")
        print(f"database started to worker registered: {time.monotonic() - appeared:.1f}s")
        source = recipe(tmp_path / "r", "late-database", "motd.yaml", MOTD)
        build_id = (
            QueueExecutor(url, Settings()).submit(BuildRequest(recipe=source, data_dir=tmp_path)).build_id
        )
        wait_for(lambda: status(url, build_id) in ("succeeded", "failed"), 300, "the build ends")
        with Catalog(url) as catalog:
            build = catalog.get_build(build_id)
            assert build.status == "succeeded", build.error
            assert [a["outcome"] for a in jobs.attempts(catalog, build_id)] == ["succeeded"]
        assert "Traceback" not in log.read_text()
    finally:
        stop(proc)
    assert proc.returncode == 0
