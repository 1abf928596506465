"""The daemon: evaluate triggers, run due builds through the executor, keep the catalog's run rows
true. One tick is one pass; :meth:`Daemon.serve` loops over ticks until told to stop.

Guarantees: builds of one pipeline never overlap; a pipeline waits while a pipeline upstream of it
(its cascade ancestors) has a run queued or running, so cascades build parents first; at most
``workers`` builds run at once; a run a dead daemon left ``running`` is marked ``interrupted`` (its
worker ended) and re-queued once; one whose build still runs elsewhere (a queue worker) is followed.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from kiln.catalog.refs import hostname, process_alive, this_process
from kiln.errors import KilnError
from kiln.models import BuildRequest
from kiln.pipelines.builds import BuildState, Started
from kiln.pipelines.cascade import ancestors
from kiln.pipelines.clock import Clock
from kiln.pipelines.options import run_options
from kiln.pipelines.recipes import PipelineRecipes, with_parameters
from kiln.pipelines.records import RunRecord, RunStatus
from kiln.pipelines.release import Release
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore

log = logging.getLogger("kiln.daemon")
IDLE_SECONDS = 15.0  # how often an idle daemon looks for new parent images and applied pipelines
BUSY_SECONDS = 0.5  # how often it polls running builds


class Runner(Protocol):
    def start(self, request: BuildRequest) -> Started: ...
    def state(self, job: str, build_id: str) -> tuple[BuildState, str | None]: ...
    def cancel(self, build_id: str) -> bool: ...
    def stop_orphan(self, job: str | None, build_id: str | None, run_id: str) -> BuildState | None: ...


@contextmanager
def single_daemon(home: Path) -> Iterator[None]:
    """One daemon per data directory (a second would run every schedule twice)."""
    with open(home / "daemon.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise KilnError(f"another kiln daemon runs on {home} (pid {fh.read().strip() or '?'})") from None
        fh.truncate(0)
        fh.write(str(this_process()[0]))
        fh.flush()
        yield


@dataclass
class Daemon:
    store: PipelineStore
    runner: Runner
    scheduler: Scheduler
    recipes: PipelineRecipes
    data_dir: Path
    clock: Clock
    workers: int = 1
    release: Release | None = None  # preflight, distribution and lifecycle around builds (kiln daemon's)
    running: dict[str, Started] = field(default_factory=dict)
    draining: bool = False
    cancelling: bool = False
    failed: int = 0
    owner: tuple[str, int, int | None] = field(default_factory=lambda: (hostname(), *this_process()))

    # --- start-up -----------------------------------------------------------------------------

    def recover(self) -> list[RunRecord]:
        """Runs a dead daemon left ``running``: end their workers, mark them interrupted, re-queue
        each once (a re-run that is interrupted again is not re-queued). Returns the re-queued runs."""
        requeued = []
        for run, job, (host, pid, start) in self.store.owners():
            if run.id in self.running or host != self.owner[0]:
                continue  # ours, or another host's (whose processes cannot be seen from here)
            if pid is not None and process_alive(pid, start):
                continue  # a live daemon's
            ended = self.runner.stop_orphan(job, run.build_id, run.id)
            now = self.clock()
            if ended == "running" and run.build_id:  # on a queue worker, which outlives daemons: follow it
                self.store.adopt(run.id, self.owner)
                self.running[run.id] = Started(job or "", run.build_id)
                log.info(
                    "run %s of %s: following its build %s, still running", run.id, run.pipeline, run.build_id
                )
                continue
            if ended == "succeeded":  # it finished while no daemon watched: nothing to re-run
                reason = f"finished while no daemon ran (its daemon, pid {pid} on {host}, had stopped)"
                status, note = self._release(run.id, run.pipeline, run.build_id)
                self.failed += status == "failed"
                self.store.finish(run.id, status, now, "; ".join(filter(None, [reason, note])))
                continue
            what = f"build {run.build_id}" if run.build_id else "the start of its build"
            again = run.retry_of is None
            reason = f"interrupted: the daemon (pid {pid} on {host}) stopped during {what}; " + (
                "re-queued once" if again else f"not re-queued again (it re-ran {run.retry_of})"
            )
            self.store.finish(run.id, "interrupted", now, reason)
            log.warning("run %s of %s %s", run.id, run.pipeline, reason)
            if again:
                key = f"retry:{run.id}"
                cause = f"re-run of interrupted run {run.id} ({run.trigger.type}: {run.trigger.cause})"
                retry = self.store.enqueue(
                    run.pipeline, "retry", cause, key, now, params=run.params, retry_of=run.id
                )
                if retry is not None:
                    requeued.append(retry)
        return requeued

    # --- one pass -----------------------------------------------------------------------------

    def tick(self, *, evaluate: bool = True) -> None:
        now = self.clock()
        if evaluate and not self.draining:
            result = self.scheduler.evaluate(now)
            for run in result.queued:
                log.info(
                    "queued run %s of %s: %s: %s", run.id, run.pipeline, run.trigger.type, run.trigger.cause
                )
            for run in result.skipped:
                log.info("skipped %s of %s: %s", run.trigger.cause, run.pipeline, run.reason)
        self.poll()
        if not self.draining:
            self.dispatch()

    def poll(self) -> None:
        for run_id, started in list(self.running.items()):
            state, error = self.runner.state(started.job, started.build_id)
            if state == "running":
                continue
            del self.running[run_id]
            status: RunStatus = (
                "succeeded" if state == "succeeded" else "cancelled" if self.cancelling else "failed"
            )
            reason = (
                error
                if status == "failed"
                else "cancelled: the daemon was told to stop"
                if status == "cancelled"
                else None
            )
            if status == "succeeded":
                status, reason = self._release(run_id, self.store.run(run_id).pipeline, started.build_id)
            if status == "failed":
                self.failed += 1
            run = self.store.finish(run_id, status, self.clock(), reason)
            log.info("run %s of %s %s (build %s)", run.id, run.pipeline, status, started.build_id)

    def dispatchable(self) -> list[RunRecord]:
        """Queued runs that may start now, oldest first, parents before children."""
        pipelines = {p.name: p for p in self.store.pipelines()}
        upstream = ancestors({n: (p.image, p.parents) for n, p in pipelines.items()})
        active = self.store.runs(statuses=("queued", "running"))
        busy = {r.pipeline for r in active if r.status == "running"}
        waiting = {r.pipeline for r in active}
        ready = []
        for run in sorted((r for r in active if r.status == "queued"), key=lambda r: (r.created, r.id)):
            if run.pipeline in busy or upstream.get(run.pipeline, set()) & waiting:
                continue
            ready.append(run)
            busy.add(run.pipeline)
        return ready

    def dispatch(self) -> None:
        for run in self.dispatchable():
            if len(self.running) >= self.workers:
                return
            self.launch(run)

    def launch(self, run: RunRecord) -> None:
        pipeline = self.store.get(run.pipeline)
        now = self.clock()
        if not pipeline.enabled and run.trigger.type != "manual":
            self.store.start(run.id, now, self.owner)
            self.store.finish(
                run.id, "skipped", now, f"pipeline disabled: {pipeline.disabled_reason or 'by a user'}"
            )
            return
        self.store.start(run.id, now, self.owner)
        try:
            source = self.recipes.resolve(pipeline.pipeline.recipe, pipeline.source_path)
            if run.params:
                loaded, issues = self.recipes.validate(source)
                if loaded is None:
                    raise KilnError("the recipe is invalid: " + "; ".join(str(i) for i in issues))
                source = with_parameters(source, loaded, run.params)
            # a re-run of an interrupted run builds as that run would have
            kind = self.store.run(run.retry_of).trigger.type if run.retry_of else run.trigger.type
            if self.release is not None:
                self.release.preflight(pipeline, source, self.recipes)
            request = BuildRequest(
                recipe=source,
                data_dir=self.data_dir,
                options=run_options(pipeline.pipeline, kind),
                requester=f"pipeline {run.pipeline} run {run.id} ({run.trigger.type}: {run.trigger.cause})",
            )
            started = self.runner.start(request)
        except KilnError as exc:
            detail = exc.message + "".join(f"\n{i}" for i in getattr(exc, "issues", None) or [])
            self.failed += 1
            self.store.finish(run.id, "failed", self.clock(), f"the build did not start: {detail}")
            log.error("run %s of %s did not start: %s", run.id, run.pipeline, detail)
            return
        self.store.attach_build(run.id, started.build_id, started.job)
        self.running[run.id] = started
        log.info("run %s of %s started build %s", run.id, run.pipeline, started.build_id)

    def _release(self, run_id: str, pipeline: str, build_id: str | None) -> tuple[RunStatus, str | None]:
        """After a successful build: distribution and lifecycle (a failure fails the run)."""
        if self.release is None or build_id is None:
            return "succeeded", None
        done = self.release.after(self.store.get(pipeline), run_id, build_id, self.clock())
        if done.note:
            log.log(logging.INFO if done.status == "succeeded" else logging.ERROR,
                    "run %s of %s: %s", run_id, pipeline, done.note)  # fmt: skip
        return done.status, done.note

    # --- lifetimes ----------------------------------------------------------------------------

    def stop(self) -> None:
        """First call: finish running builds, start no more. Second: cancel the running builds."""
        if self.draining:
            self.cancelling = True
            for started in self.running.values():
                self.runner.cancel(started.build_id)
            log.warning("cancelling %d running build(s)", len(self.running))
        else:
            self.draining = True
            log.warning(
                "stopping after %d running build(s) finish (signal again to cancel them)", len(self.running)
            )

    def once(self, wake: threading.Event) -> int:
        """Evaluate triggers, build what is due and the cascade it sets off (triggers are evaluated
        again only when a build has finished), exit when nothing runs or can start; 1 if a run failed."""
        self.recover()
        self.tick()
        while self.running or (not self.draining and self.dispatchable()):
            wake.wait(BUSY_SECONDS)
            wake.clear()
            before = len(self.running)
            self.poll()
            self.tick(evaluate=len(self.running) < before)
        return 1 if self.failed else 0

    def serve(self, wake: threading.Event) -> int:
        self.recover()
        while True:
            healthy = self.safe_tick()
            if self.draining and not self.running:
                return 0
            busy = self.running or self.draining
            wake.wait(BUSY_SECONDS if busy else self._idle_seconds() if healthy else IDLE_SECONDS)
            wake.clear()

    def safe_tick(self) -> bool:
        """A tick that survives what a long-running daemon meets (the database restarting, a locked
        SQLite file, an unreadable recipe): logged, and tried again on the next tick."""
        try:
            self.tick()
        except (KilnError, SQLAlchemyError, OSError) as exc:
            log.error("tick failed, trying again: %s", exc)
            return False
        return True

    def _idle_seconds(self) -> float:
        """Until the next fire time of any pipeline, at most IDLE_SECONDS."""
        now = self.clock()
        wait = timedelta(seconds=IDLE_SECONDS)
        for p in self.store.pipelines():
            timetable = p.pipeline.timetable
            if timetable is not None and p.enabled:
                wait = min(wait, timetable.next_after(p.schedule_cursor or now) - now)
        return max(wait.total_seconds(), 0.05)
