"""The queue executor end to end: a private PostgreSQL, real ``kiln worker`` processes (each with its own
data directory, standing in for machines), real builds of a tiny recipe on the cached Debian parent."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildOptions, BuildRequest, RecipeSource
from kiln.objectstore import open_object_store
from kiln.settings import Settings
from tests.documents import create_file_component, sleep_component, write_recipe

REPO = Path(__file__).resolve().parents[2]
KILN = REPO / ".venv/bin/kiln"
STALLED_AFTER = 3.0

MOTD = create_file_component("built by a queue worker\n")


def recipe(folder: Path, name: str, component: str, document: str) -> RecipeSource:
    return RecipeSource.read(write_recipe(folder, name, component, document))


def env_for(url: str | None, home: Path) -> dict[str, str]:
    env = {**os.environ, "KILN_HOME": str(home), "KILN_ACCEL": "tcg"}
    env.pop("KILN_DATABASE_URL", None)
    return {**env, "KILN_DATABASE_URL": url} if url else env


class Workers:
    """``kiln worker`` processes of one test, each with its own data directory; all stopped at the end."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        self.store_url: str | None = None  # KILN_STORE_URL of the workers started next
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, capability: str = "amd64,disk>=1G") -> subprocess.Popen[bytes]:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [str(KILN), "worker", "--capability", capability, "--stalled-after", str(STALLED_AFTER)],
                env={**env_for(self.url, home), **({"KILN_STORE_URL": self.store_url} if self.store_url else {})},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        wait_for(lambda: any(w.pid == proc.pid for w in self.live()), 30, f"worker {name} registers")
        return proc

    def live(self) -> list[jobs.WorkerRow]:
        with Catalog(self.url) as catalog:
            return jobs.live_workers(catalog)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds:.0f}s waiting until: {what}"
        time.sleep(0.2)


def status(url: str, build_id: str) -> str:
    with Catalog(url) as catalog:
        return catalog.get_build(build_id).status


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (arguments joined by spaces)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes().replace(b"\0", b" "):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.fixture
def workers(queue_url: str, tmp_path: Path) -> Iterator[Workers]:
    with Catalog.open(queue_url):
        pass  # schema (and Procrastinate's) in place before workers and submitters race to make it
    running = Workers(queue_url, tmp_path / "workers")
    try:
        yield running
    finally:
        running.stop_all()


def test_worker_refuses_a_sqlite_catalog(tmp_path: Path) -> None:
    run = subprocess.run([str(KILN), "worker"], env=env_for(None, tmp_path), capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "kiln worker needs a PostgreSQL catalog; this one is SQLite" in run.stderr
    assert "KILN_DATABASE_URL=postgresql://" in run.stderr and "Traceback" not in run.stderr


def test_unrunnable_build_waits_with_a_reason_and_is_cancelled_at_once(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    workers.start("amd")
    executor = QueueExecutor(queue_url, Settings())
    source = recipe(tmp_path / "r", "arm-motd", "motd.yaml", MOTD)
    request = BuildRequest(recipe=source, data_dir=tmp_path / "submitter", requires=["arm64"])
    build_id = executor.submit(request).build_id
    assert executor.submit(request).build_id == build_id  # identical and still waiting: de-duplicated
    time.sleep(2)  # an amd64 worker listens; it must not take the job
    assert status(queue_url, build_id) == "queued"
    shown = subprocess.run([str(KILN), "builds", "show", build_id],
                           env=env_for(queue_url, tmp_path / "cli"), capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "waiting: no worker with capability arm64" in shown.stdout
    listed = subprocess.run(
        [str(KILN), "status", "--json"],
        env=env_for(queue_url, tmp_path / "cli"),
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert [(w["host"], w["capabilities"], w["current_build"]) for w in report["workers"]] == [
        (socket.gethostname(), ["amd64", "disk>=1G"], None)
    ]
    assert {"name": "builds.arm64", "todo": 1, "doing": 0} in report["queues"]
    started = time.monotonic()
    assert executor.cancel(build_id) is True
    assert status(queue_url, build_id) == "failed"
    assert time.monotonic() - started < 5
    with Catalog(queue_url) as catalog:
        assert catalog.get_build(build_id).error == "cancelled"


@pytest.mark.e2e
def test_queued_build_runs_on_a_worker_and_is_recorded(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    workers.store_url = str(tmp_path / "shared-store")
    workers.start("one")
    executor = QueueExecutor(queue_url, Settings())
    source = recipe(tmp_path / "r", "queue-motd", "motd.yaml", MOTD)
    build_id = executor.submit(BuildRequest(recipe=source, data_dir=tmp_path / "submitter")).build_id
    wait_for(lambda: status(queue_url, build_id) in ("succeeded", "failed"), 300, "the build ends")
    with Catalog(queue_url) as catalog:
        build = catalog.get_build(build_id)
        assert build.status == "succeeded", build.error
        assert build.image == "queue-motd@1.0.0/1"
        image = catalog.get_image("queue-motd")
        history = jobs.attempts(catalog, build_id)
    assert [(a["attempt"], a["outcome"]) for a in history] == [(1, "succeeded")]
    oci = next(a for a in image.artifacts if a.kind == "oci")
    assert oci.path.startswith(str(tmp_path / "workers" / "one"))  # written in the worker's data dir
    shared = open_object_store(workers.store_url, tmp_path / "reader")  # and published by digest
    assert all(shared.has(d) for d in [oci.digest, *(e.digest for e in image.evidence)])
    assert image.evidence


@pytest.mark.e2e
def test_killed_worker_build_is_retried_once_elsewhere(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    first, second = workers.start("a"), workers.start("b")
    executor = QueueExecutor(queue_url, Settings())
    source = recipe(tmp_path / "r", "queue-sleep", "sleep.yaml", sleep_component(15))
    request = BuildRequest(
        recipe=source, data_dir=tmp_path / "submitter", options=BuildOptions(no_cache=True)
    )
    build_id = executor.submit(request).build_id  # no_cache: the step really sleeps, on both attempts

    def attempts() -> list[dict[str, object]]:
        with Catalog(queue_url) as catalog:
            return jobs.attempts(catalog, build_id)

    wait_for(lambda: attempts(), 60, "a worker claims the build")
    wait_for(lambda: processes_mentioning("sleep 15"), 120, "the step sleeps")
    with Catalog(queue_url) as catalog:
        owner = next(w for w in jobs.live_workers(catalog) if w.id == attempts()[0]["worker"])
    victim = first if owner.pid == first.pid else second
    victim_name = "a" if victim is first else "b"
    victim.kill()  # SIGKILL: no chance to record anything
    victim.wait()
    killed_at = datetime.now(UTC)
    job_dir = tmp_path / "workers" / victim_name / "jobs" / f"{build_id}-1"
    wait_for(
        lambda: not processes_mentioning(str(job_dir)), 10, "the killed worker's build processes are gone"
    )

    wait_for(lambda: status(queue_url, build_id) in ("succeeded", "failed"), 300, "the build ends")
    with Catalog(queue_url) as catalog:
        build = catalog.get_build(build_id)
        assert build.status == "succeeded", build.error
        assert [i.ref for i in catalog.list_images("queue-sleep")] == ["queue-sleep@1.0.0/1"]
    history = attempts()
    assert [(a["attempt"], a["outcome"]) for a in history] == [(1, "lost"), (2, "succeeded")]
    assert history[0]["worker"] != history[1]["worker"]
    started_again = history[1]["started"]
    assert isinstance(started_again, datetime)
    retried_after = (started_again - killed_at).total_seconds()
    print(f"SIGKILL to retry on the other worker: {retried_after:.1f}s (stalled after {STALLED_AFTER}s)")
    assert retried_after < 4 * STALLED_AFTER + 10  # heartbeat timeout + sweep period + fetch polling

    workers.start(victim_name)  # the restarted worker cleans up what the killed one left
    leftovers = tmp_path / "workers" / victim_name / "tmp"
    wait_for(lambda: not any(leftovers.iterdir()), 30, f"{leftovers} is empty")


@pytest.mark.e2e
def test_running_build_is_aborted_and_its_processes_killed(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    workers.start("one")
    executor = QueueExecutor(queue_url, Settings())
    seconds = random.randrange(3000, 9000)  # a command line no other test's process has
    sleeping = f"sleep {seconds}"
    source = recipe(tmp_path / "r", "queue-long", "sleep.yaml", sleep_component(seconds))
    build_id = executor.submit(BuildRequest(recipe=source, data_dir=tmp_path / "submitter")).build_id
    job_dir = tmp_path / "workers" / "one" / "jobs" / f"{build_id}-1"
    wait_for(lambda: processes_mentioning(sleeping), 120, "the step runs")
    started = time.monotonic()
    assert executor.cancel(build_id) is True
    wait_for(lambda: status(queue_url, build_id) == "failed", 15, "the build is aborted")
    aborted = time.monotonic() - started
    print(f"cancel to build recorded failed: {aborted:.1f}s")
    wait_for(lambda: not processes_mentioning(str(job_dir)) and not processes_mentioning(sleeping), 30,
             "the build's processes are gone")  # fmt: skip
    with Catalog(queue_url) as catalog:  # the build records "interrupted", the worker then "cancelled"
        wait_for(
            lambda: catalog.get_build(build_id).error == "cancelled", 10, "the worker records the cancel"
        )
        assert [a["outcome"] for a in jobs.attempts(catalog, build_id)] == ["cancelled"]
    assert aborted < 15


@pytest.mark.e2e
def test_builds_spread_over_two_workers_with_the_same_digest(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    workers.start("a")
    workers.start("b")
    executor = QueueExecutor(queue_url, Settings())
    # The same recipe from four folders (four requests: identical ones would be de-duplicated).
    ids = [
        executor.submit(
            BuildRequest(
                recipe=recipe(tmp_path / f"r{n}", "spread", "motd.yaml", MOTD),
                data_dir=tmp_path / "submitter",
            )
        ).build_id
        for n in range(4)
    ]
    assert len(set(ids)) == 4
    wait_for(lambda: all(status(queue_url, b) in ("succeeded", "failed") for b in ids), 600, "all builds end")
    with Catalog(queue_url) as catalog:
        assert [catalog.get_build(b).status for b in ids] == ["succeeded"] * 4
        images = catalog.list_images("spread")
        ran_on = {jobs.attempts(catalog, b)[0]["worker"] for b in ids}
    assert sorted(i.build for i in images) == [1, 2, 3, 4]
    assert len({i.digest for i in images}) == 1  # reproducible: either worker, the same image
    assert len(ran_on) == 2, "both workers took builds"
