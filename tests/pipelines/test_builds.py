"""The executor adapter's orphan handling with real processes: a worker a dead daemon started (even
one whose job id it never learnt) is found by its run and stopped."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kiln.catalog import Catalog
from kiln.models import BuildRequest, RecipeSource
from kiln.pipelines.builds import BuildRunner
from kiln.sandbox.namespace import process_start
from kiln.settings import Settings
from kiln.store import Store


def test_an_orphaned_worker_is_found_by_its_run_and_stopped(store: Store) -> None:
    run_id = "0" * 32
    job = store.home / "jobs" / "j1"
    job.mkdir(parents=True)
    request = BuildRequest(recipe=RecipeSource(text="name: x", path=Path("/r.yaml")), data_dir=store.home,
                           requester=f"pipeline web run {run_id} (schedule: cron)")  # fmt: skip
    (job / "request.json").write_text(request.model_dump_json())
    worker = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        (job / "pid").write_text(f"{worker.pid} {process_start(worker.pid)}")
        with Catalog.open(store.database_url) as catalog:
            runner = BuildRunner(store, Settings.from_env(), catalog)
            assert runner.job_of(run_id) == "j1" and runner.job_of("1" * 32) is None
            runner.stop_orphan(None, None, run_id)  # the dead daemon never learnt the job or the build
        assert worker.wait(timeout=5) == -15  # SIGTERM
    finally:
        worker.kill()
        worker.wait()


def test_a_queued_build_without_a_local_job_is_followed_through_the_catalog(store: Store) -> None:
    with Catalog.open(store.database_url) as catalog:
        build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="/r.yaml",
                                    log_path="/nonexistent")  # fmt: skip
        runner = BuildRunner(store, Settings.from_env(), catalog)
        (store.home / "jobs").mkdir(exist_ok=True)
        for job in ("", "4711"):  # joined a waiting build; a Procrastinate job id
            assert runner.state(job, build) == ("running", None)
        assert runner.stop_orphan("4711", build, "0" * 32) == "running"  # the daemon follows it
        catalog.fail_build(build, "step failed")
        assert runner.state("4711", build) == ("failed", "step failed")
