"""The daemon: evaluate triggers, run due builds through the executor, keep the catalog's run rows
true. One tick is one pass; :meth:`Daemon.serve` loops over ticks until told to stop.

Guarantees: builds of one pipeline never overlap; a pipeline waits while a pipeline upstream of it
(its cascade ancestors) has a run queued or running, so cascades build parents first; at most
``workers`` builds run at once; a run a dead daemon left ``running`` is marked ``interrupted`` (its
worker ended) and re-queued once; one whose build still runs elsewhere (a queue worker) is followed.

A successful build's release (distribution and lifecycle, kiln.pipelines.release) runs in a
background thread (at most ``workers`` at once), so a slow upload does not hold up scheduling, other
builds or signals; the run stays ``running`` with a ``releasing: ...`` reason until it ends, and its
pipeline's next run waits for it. A release a dead daemon left unfinished is done again by the next
daemon (distribution skips targets already published, the lifecycle plan is re-made); a run whose
release was cut short twice is marked ``interrupted``, the image kept.

With a vulnerability feed (``feed``, kiln.pipelines.vulnfeed) the daemon imports it when due, also
in a background thread; an import that changed the database evaluates the ``cve`` triggers at once.
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
from kiln.pipelines.background import Background, Outcome
from kiln.pipelines.builds import BuildState, Started
from kiln.pipelines.cascade import ancestors
from kiln.pipelines.clock import Clock
from kiln.pipelines.cvetrigger import evaluate_all
from kiln.pipelines.options import run_options
from kiln.pipelines.recipes import PipelineRecipes, with_parameters
from kiln.pipelines.records import RunRecord, RunStatus
from kiln.pipelines.release import Release, Released
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.pipelines.vulnfeed import FeedCheck, VulnFeed

log = logging.getLogger("kiln.daemon")
IDLE_SECONDS = 15.0  # how often an idle daemon looks for new parent images and applied pipelines
BUSY_SECONDS = 0.5  # how often it polls running builds
RELEASING = "releasing: "  # the reason of a running run whose build succeeded, while it is released
RELEASING_AGAIN = "releasing again: "  # ... when a daemon stopped during its release before


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
    wake: threading.Event = field(default_factory=threading.Event)  # set when background work ended
    releasing: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # run -> (build, note)
    releases: Background[Released] = field(init=False)
    feed: VulnFeed | None = None  # the vulnerability feed imported when due (--vulndb-source)
    feeds: Background[FeedCheck] = field(init=False)

    def __post_init__(self) -> None:
        self.releases = Background(self.workers, lambda: self.wake.set(), name="kiln-release")
        self.feeds = Background(1, lambda: self.wake.set(), name="kiln-vulndb")

    # --- start-up -----------------------------------------------------------------------------

    def recover(self) -> list[RunRecord]:
        """Runs a dead daemon left ``running``: end their workers, mark them interrupted, re-queue
        each once (a re-run that is interrupted again is not re-queued). Returns the re-queued runs."""
        requeued = []
        for run, job, (host, pid, start) in self.store.owners():
            if run.id in self.running or run.id in self.releasing or host != self.owner[0]:
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
                self._recover_release(run, f"pid {pid} on {host}")
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
        for done in self.feeds.done():
            self._feed_checked(done.result, done.error)
        if evaluate and not self.draining:
            feed = self.feed
            if feed is not None and feed.due(now) and not self.feeds.pending():
                self.feeds.submit("vulndb", lambda: feed.check(now))
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
            # (a release that cannot begin, the catalog away, leaves the run here for the next tick)
            began = status == "succeeded" and self._begin_release(run_id, started.build_id)
            del self.running[run_id]
            if began:
                continue
            if status == "failed":
                self.failed += 1
            run = self.store.finish(run_id, status, self.clock(), reason)
            log.info("run %s of %s %s (build %s)", run.id, run.pipeline, status, started.build_id)
        self._collect_releases()

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

    # --- releases (in the background) ---------------------------------------------------------

    def _begin_release(self, run_id: str, build_id: str | None, before: str | None = None) -> bool:
        """Hand a successful build's distribution and lifecycle to a background thread; False when
        there is nothing to release (the caller finishes the run). ``before``: what the final reason
        starts with (how the run came to be released by this daemon)."""
        if self.release is None or build_id is None:
            return False
        pipeline = self.store.get(self.store.run(run_id).pipeline)
        spec = pipeline.pipeline
        steps = ([f"distributing to {', '.join(spec.distribution)}"] if spec.distribution else []) + (
            [f"applying lifecycle policy {spec.lifecycle}"] if spec.lifecycle is not None else []
        )
        if not steps:
            return False
        now = self.clock()
        again = before is not None and before.startswith("released again")
        note = (
            (RELEASING_AGAIN if again else RELEASING)
            + f"build {build_id} succeeded; "
            + ", then ".join(steps)
        )
        self.store.note(run_id, f"{note} (since {now:%Y-%m-%d %H:%M:%S} UTC)")
        self.releasing[run_id] = (build_id, before)
        release = self.release
        self.releases.submit(run_id, lambda: release.after(pipeline, run_id, build_id, now))
        log.info("run %s of %s: %s", run_id, pipeline.name, note)
        return True

    def _collect_releases(self) -> None:
        finished = self.releases.done()
        while finished:
            try:
                self._released(finished[0])
            except BaseException:
                self.releases.put_back(finished)  # recorded on a later tick (the catalog away)
                raise
            finished.pop(0)
        if self.cancelling:
            for run_id, (build_id, _) in list(self.releasing.items()):
                self.releases.forget(run_id)
                del self.releasing[run_id]
                kept = self._kept(build_id)
                reason = f"cancelled during its release (the daemon was told to stop twice): {kept}"
                self.store.finish(run_id, "cancelled", self.clock(), reason)
                log.warning("run %s %s", run_id, reason)

    def _released(self, done: Outcome[Released]) -> None:
        build_id, before = self.releasing[done.key]
        if done.result is not None:
            status, note = done.result.status, done.result.note
        else:
            status, note = "failed", f"the release failed: {type(done.error).__name__}: {done.error}"
        if note:
            log.log(logging.INFO if status == "succeeded" else logging.ERROR, "run %s: %s", done.key, note)
        run = self.store.finish(done.key, status, self.clock(), "; ".join(filter(None, [before, note])))
        del self.releasing[done.key]
        self.failed += status == "failed"
        log.info("run %s of %s %s (build %s, released)", run.id, run.pipeline, status, build_id)

    def _kept(self, build_id: str | None) -> str:
        image = self.store.catalog.get_build(build_id).image if build_id else None
        return f"the image {image} is kept; publish it with: kiln distribute {image}" if image else ""

    def _recover_release(self, run: RunRecord, daemon: str) -> None:
        """A run of a dead daemon whose build succeeded: released (again) by this daemon, once."""
        now = self.clock()
        reason = run.reason or ""
        if reason.startswith(RELEASING_AGAIN):
            kept = self._kept(run.build_id)
            why = f"interrupted: its daemon ({daemon}) stopped during its release, twice; {kept}"
            self.store.finish(run.id, "interrupted", now, why)
            log.warning("run %s of %s %s", run.id, run.pipeline, why)
            return
        before = (
            f"released again: its daemon ({daemon}) stopped during the release"
            if reason.startswith(RELEASING)
            else f"finished while no daemon ran (its daemon, {daemon}, had stopped)"
        )
        self.store.adopt(run.id, self.owner)
        if not self._begin_release(run.id, run.build_id, before):
            self.store.finish(run.id, "succeeded", now, before)

    # --- the vulnerability feed -----------------------------------------------------------------

    def import_feed_now(self) -> None:
        """Look at the feed now, in this thread (``--once``)."""
        if self.feed is None:
            return
        try:
            checked: FeedCheck | None = self.feed.check(self.clock())
        except Exception as exc:  # logged and counted like a failed run; the database is unchanged
            self._feed_checked(None, exc)
            return
        self._feed_checked(checked, None)

    def _feed_checked(self, checked: FeedCheck | None, error: BaseException | None) -> None:
        assert self.feed is not None
        source, later = self.feed.source, self.feed.next_check
        if checked is None:
            detail = error.message if isinstance(error, KilnError) else f"{type(error).__name__}: {error}"
            log.error(
                "vulnerability feed %s: %s; the database is unchanged, next try at %s",
                source, detail, f"{later:%Y-%m-%d %H:%M:%S}" if later else "the next tick",
            )  # fmt: skip
            self.failed += 1
            return
        log.info("vulnerability feed %s: %s", source, checked.detail)
        if checked.imported is None:
            return
        if checked.events:
            log.info("%d new (image, vulnerability) pairs affect active images", checked.events)
        # the cve triggers, at once (as after kiln vulndb import), with the scheduler's own check
        now = self.clock()
        queued: list[RunRecord] = []
        skipped: list[RunRecord] = []
        if self.scheduler.cve is not None:
            for pipeline in self.store.pipelines():
                self.scheduler.cve(self.store, pipeline, now, queued, skipped)
        else:
            queued, skipped = evaluate_all(self.feed.store, self.store.catalog, now)
        for run in queued:
            log.info(
                "after the import: queued run %s of %s: cve: %s", run.id, run.pipeline, run.trigger.cause
            )
        for run in skipped:
            log.info("after the import: pipeline %s not rebuilt: %s", run.pipeline, run.reason)

    # --- lifetimes ----------------------------------------------------------------------------

    def stop(self) -> None:
        """First call: finish running builds, start no more. Second: cancel the running builds."""
        if self.draining:
            self.cancelling = True
            for started in self.running.values():
                self.runner.cancel(started.build_id)
            log.warning(
                "cancelling %d running build(s), leaving %d release(s)",
                len(self.running),
                len(self.releasing),
            )
        else:
            self.draining = True
            log.warning(
                "stopping after %d running build(s) and %d release(s) finish (signal again to cancel them)",
                len(self.running),
                len(self.releasing),
            )

    def once(self, wake: threading.Event) -> int:
        """Evaluate triggers, build what is due and the cascade it sets off (triggers are evaluated
        again only when a build has finished), exit when nothing runs or can start; 1 if a run failed."""
        self.wake = wake
        self.recover()
        self.import_feed_now()
        self.tick()
        while (
            self.running
            or self.releasing
            or self.feeds.pending()  # a feed check fallen due meanwhile (a short --vulndb-every)
            or (not self.draining and self.dispatchable())
        ):
            wake.wait(BUSY_SECONDS)
            wake.clear()
            before = len(self.running) + len(self.releasing)
            self.poll()
            self.tick(evaluate=len(self.running) + len(self.releasing) < before)
        return 1 if self.failed else 0

    def serve(self, wake: threading.Event) -> int:
        self.wake = wake
        self.recover()
        while True:
            healthy = self.safe_tick()
            feeding = self.feeds.pending() and not self.cancelling  # an import ends with its transaction
            if self.draining and not self.running and not self.releasing and not feeding:
                return 0
            busy = self.running or self.releasing or self.draining
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
        if self.feed is not None and self.feed.next_check is not None:
            wait = min(wait, self.feed.next_check - now)
        for p in self.store.pipelines():
            timetable = p.pipeline.timetable
            if timetable is not None and p.enabled:
                wait = min(wait, timetable.next_after(p.schedule_cursor or now) - now)
        return max(wait.total_seconds(), 0.05)
