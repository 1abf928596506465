"""The scale-out issue's "must show" items that the other queue tests prove only in part: two workers
with an S3 store (moto) building the same recipe four times to one digest, every artifact readable
from the store by a third machine; a running build cancelled within 5 s with its process tree, its
mounts (in any mount namespace), loop devices and scratch gone within 30 s; a SIGKILLed worker's build
finished by the other with its leftovers (scratch, mounts, processes) gone once it restarts."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildOptions, BuildRequest
from kiln.readthrough import localized
from kiln.settings import Settings
from kiln.store import Store
from tests.documents import sleep_component
from tests.executors.test_queue import MOTD, Workers, processes_mentioning, recipe, status, wait_for
from tests.executors.test_shared_store import s3_store, workers

__all__ = ["s3_store", "workers"]  # fixtures: workers with moto's S3 server as KILN_STORE_URL
pytestmark = pytest.mark.e2e


def mounts_under(path: Path) -> list[str]:
    """Mount points below ``path`` in any process's mount namespace (a build's are private)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines = (proc / "mountinfo").read_text().splitlines()
            except OSError:
                continue
            found.update(f"{proc.name}: {line.split()[4]}" for line in lines if str(path) in line)
    return sorted(found)


def loop_devices_under(path: Path) -> list[str]:
    backing = [(dev.name, (dev / "loop" / "backing_file")) for dev in Path("/sys/block").glob("loop*")]
    return [name for name, file in backing if file.is_file() and str(path) in file.read_text()]


def scratch(home: Path) -> list[Path]:
    return sorted((home / "tmp").iterdir()) if (home / "tmp").is_dir() else []


def test_four_builds_over_two_workers_in_s3_with_one_digest(
    workers: Workers, queue_url: str, s3_store: str, tmp_path: Path
) -> None:
    workers.store_url = s3_store
    workers.start("a")
    workers.start("b")
    executor = QueueExecutor(queue_url, Settings())
    ids = [executor.submit(BuildRequest(recipe=recipe(tmp_path / f"r{n}", "spread-s3", "motd.yaml", MOTD),
                                        data_dir=tmp_path / "submitter")).build_id for n in range(4)]  # fmt: skip
    wait_for(lambda: all(status(queue_url, b) in ("succeeded", "failed") for b in ids), 600, "all builds end")
    with Catalog(queue_url) as catalog:
        assert [catalog.get_build(b).status for b in ids] == ["succeeded"] * 4
        images = catalog.list_images("spread-s3")
        ran_on = {jobs.attempts(catalog, b)[0]["worker"] for b in ids}
        homes = {b: Path(catalog.get_build(b).log_path).parents[1].name for b in ids}
    assert len(ran_on) == 2 and set(homes.values()) == {"a", "b"}, homes  # both machines built
    assert len({i.digest for i in images}) == 1  # either worker, the same image

    # A third machine reads every artifact and evidence file from S3 alone, verified by digest.
    reader = Store.open(tmp_path / "reader", Settings(database_url=queue_url, store_url=s3_store))
    for image in images:
        local = localized(reader, image)
        for artifact in local.artifacts:
            assert Path(artifact.path).is_relative_to(reader.home / "remote")
            if artifact.kind == "oci":
                manifest = Path(artifact.path) / "blobs/sha256" / artifact.digest.removeprefix("sha256:")
                assert "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest() == artifact.digest
            else:
                assert (
                    "sha256:" + hashlib.sha256(Path(artifact.path).read_bytes()).hexdigest()
                    == artifact.digest
                )
        for evidence in local.evidence:
            assert "sha256:" + hashlib.sha256(Path(evidence.path).read_bytes()).hexdigest() == evidence.digest


def test_cancelled_running_build_leaves_nothing_within_bounds(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    workers.start("one")
    home = tmp_path / "workers" / "one"
    executor = QueueExecutor(queue_url, Settings())
    source = recipe(tmp_path / "r", "cancel-me", "sleep.yaml", sleep_component(301))
    build_id = executor.submit(BuildRequest(recipe=source, data_dir=tmp_path / "submitter")).build_id
    wait_for(lambda: processes_mentioning("sleep 301"), 120, "the step runs")
    assert mounts_under(home), "the running build has its mounts (in its own namespace)"
    assert scratch(home), "and its scratch directory"
    asked = time.monotonic()
    assert executor.cancel(build_id) is True

    def recorded() -> tuple[str, str | None]:
        with Catalog(queue_url) as catalog:
            build = catalog.get_build(build_id)
            return build.status, build.error

    # The build process ends like Ctrl-C ("interrupted"); the worker then records why: "cancelled".
    wait_for(lambda: recorded() == ("failed", "cancelled"), 5, "the build is aborted within 5 s")
    aborted = time.monotonic() - asked
    job_dir = home / "jobs" / f"{build_id}-1"

    def nothing_left() -> bool:
        return not (processes_mentioning(str(job_dir)) or processes_mentioning("sleep 301")
                    or mounts_under(home) or loop_devices_under(home) or scratch(home))  # fmt: skip

    wait_for(nothing_left, 30, "no process, mount, loop device or scratch of the build is left")
    gone = time.monotonic() - asked
    print(f"cancel to recorded cancelled {aborted:.2f}s; to nothing left {gone:.2f}s")
    with Catalog(queue_url) as catalog:
        assert [a["outcome"] for a in jobs.attempts(catalog, build_id)] == ["cancelled"]


def test_sigkilled_worker_leaves_nothing_once_restarted(
    workers: Workers, queue_url: str, tmp_path: Path
) -> None:
    first, second = workers.start("a"), workers.start("b")
    executor = QueueExecutor(queue_url, Settings())
    source = recipe(tmp_path / "r", "kill-me", "sleep.yaml", sleep_component(12))
    request = BuildRequest(
        recipe=source, data_dir=tmp_path / "submitter", options=BuildOptions(no_cache=True)
    )
    build_id = executor.submit(request).build_id
    wait_for(lambda: processes_mentioning("sleep 12"), 120, "the step sleeps")
    with Catalog(queue_url) as catalog:
        owner = jobs.attempts(catalog, build_id)[0]["worker"]
        victim_pid = next(w.pid for w in jobs.live_workers(catalog) if w.id == owner)
    victim, name = (first, "a") if victim_pid == first.pid else (second, "b")
    home = tmp_path / "workers" / name
    assert mounts_under(home) and scratch(home)
    victim.kill()
    victim.wait()
    killed = time.monotonic()
    killed_at = datetime.now(UTC)
    wait_for(lambda: not processes_mentioning(str(home)) and not mounts_under(home), 10,
             "the killed worker's build processes and their mounts are gone")  # fmt: skip
    print(f"SIGKILL to no process or mount left: {time.monotonic() - killed:.2f}s")
    left = scratch(home)
    assert left, "a killed build cannot remove its scratch: its restart must"

    wait_for(lambda: status(queue_url, build_id) in ("succeeded", "failed"), 300, "the build ends")
    with Catalog(queue_url) as catalog:
        assert catalog.get_build(build_id).status == "succeeded", catalog.get_build(build_id).error
        assert [i.ref for i in catalog.list_images("kill-me")] == ["kill-me@1.0.0/1"]  # exactly one
        history = jobs.attempts(catalog, build_id)
    assert [(a["attempt"], a["outcome"]) for a in history] == [(1, "lost"), (2, "succeeded")]
    assert history[1]["worker"] != owner and history[1]["started"] > killed_at

    workers.start(name)  # its start-up reclaims what the killed one left
    wait_for(lambda: not scratch(home), 30, f"{home / 'tmp'} is empty")
    assert not any(p.exists() for p in left)
    assert not mounts_under(home) and not loop_devices_under(home)
    assert not [p for p in processes_mentioning(str(home)) if p != workers.procs[name].pid]
