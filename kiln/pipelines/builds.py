"""The daemon's one use of an executor (:class:`kiln.executors.base.Executor`: the local one, or the
queue of PostgreSQL catalogs): start a build, ask its state, cancel it, and put an end to a local
worker an earlier daemon left behind."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Literal

from kiln.catalog import Catalog
from kiln.errors import NotFound
from kiln.executors.base import Executor
from kiln.executors.local import LocalExecutor
from kiln.models import BuildRequest
from kiln.sandbox.namespace import process_start
from kiln.settings import Settings
from kiln.store import Store

BuildState = Literal["running", "succeeded", "failed"]
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Started:
    job: str
    build_id: str


class BuildRunner:
    """Builds through ``executor`` (default: the local one; ``kiln daemon`` passes
    :func:`kiln.executors.base.executor_for`). Worker liveness and orphan handling apply to jobs with
    a local job directory; others are followed through the catalog only."""

    def __init__(
        self, store: Store, settings: Settings, catalog: Catalog, executor: Executor | None = None
    ) -> None:
        self.executor: Executor = executor or LocalExecutor(store, settings)
        self.catalog = catalog
        self.jobs = store.home / "jobs"

    def start(self, request: BuildRequest) -> Started:
        """Start a build in its own worker process; returns once the catalog has it (KilnError if the
        worker refused the request)."""
        submitted = self.executor.submit(request)
        return Started(submitted.job, submitted.build_id)

    def _worker(self, job: str) -> int | None:
        """The worker's pid while it lives (its recorded start time guards against a reused pid)."""
        try:
            pid, started = (self.jobs / job / "pid").read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid) if str(process_start(pid)) == started else None

    def state(self, job: str, build_id: str) -> tuple[BuildState, str | None]:
        """The build's state and error; a build whose worker died unrecorded is reaped as failed."""
        try:
            build = self.catalog.get_build(build_id)
        except NotFound:
            return "failed", f"build {build_id} is not in the catalog"
        local = bool(job) and (self.jobs / job).is_dir()  # a queue job ("" when joined) has no directory
        if build.status == "running" and local and self._worker(job) is None:
            self.catalog.reap_interrupted()
            build = self.catalog.get_build(build_id)
            if build.status == "running":
                return "failed", "the build worker ended without recording the build"
        if build.status in ("running", "queued"):
            return "running", None
        if build.status == "succeeded":
            return "succeeded", None
        return "failed", build.error or f"the build ended {build.status}"

    def cancel(self, build_id: str) -> bool:
        return self.executor.cancel(build_id)

    def job_of(self, run_id: str) -> str | None:
        """The job started for pipeline run ``run_id`` (a daemon killed while its worker was starting
        never learnt it): the request's requester names the run."""
        needle = f"run {run_id} ("
        for request in self.jobs.glob("*/request.json") if self.jobs.is_dir() else ():
            try:
                if needle in (BuildRequest.model_validate_json(request.read_text()).requester or ""):
                    return request.parent.name
            except (OSError, ValueError):
                continue
        return None

    def stop_orphan(self, job: str | None, build_id: str | None, run_id: str) -> BuildState | None:
        """End a worker a dead daemon left running: SIGTERM (the build records itself failed and
        removes its outputs and mounts), SIGKILL if it has not ended within STOP_SECONDS. Returns
        how its build ended (None: no build was recorded)."""
        job = job or self.job_of(run_id)
        if build_id is None and job is not None and (self.jobs / job / "build").is_file():
            build_id = (self.jobs / job / "build").read_text().strip()
        pid = self._worker(job) if job else None
        if job is None or pid is None:
            return None if build_id is None else self.state(job or "", build_id)[0]
        if build_id is not None:
            self.cancel(build_id)
        else:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self._worker(job) is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)
        if build_id is None:
            return None
        self.catalog.reap_interrupted()
        return self.state(job, build_id)[0]
