"""A CVE-triggered run that does not succeed leaves its cause open: the trigger queues it again after
a back-off on the scheduler's clock, never while a run (or the daemon's re-run of an interrupted one)
for it is queued or running, at most MAX_ATTEMPTS times, and says once when it gives up; a success
closes the cause. Real catalog and vulnerability database, the archive as the trigger sees it
injected (tests/pipelines/test_fresh_triggers.py), no real sleeps."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kiln.catalog import Catalog
from kiln.pipelines.checks import CatalogChanges
from kiln.pipelines.cveretry import BACKOFF, MAX_ATTEMPTS, cause_state
from kiln.pipelines.cvetrigger import CveTrigger
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.store import Store
from tests.pipelines.conftest import CatalogRunner, FakeClock, World, catalog_url, world
from tests.pipelines.test_fresh_triggers import NOW, SSL, apply, archive_with, home, record, tracker

__all__ = ["catalog_url", "home", "world"]  # fixtures
OWNER = ("this-host", 1, None)
FIXED = "3.0.15-1~deb12u1"


def scheduler_for(store: Store, catalog: Catalog, runs: PipelineStore) -> Scheduler:
    """A fresh scheduler (as a new ``kiln daemon --once`` process makes): no memory of earlier passes."""
    return Scheduler(runs, CatalogChanges(catalog), PipelineRecipes(catalog),
                     cve=CveTrigger(store, catalog, archive_with(FIXED)))  # fmt: skip


def setup(home: tuple[Store, Catalog, PipelineStore], tmp_path: Path) -> str:
    store, catalog, runs = home
    apply(tmp_path, runs)
    ref = record(catalog, [SSL], [], [])
    tracker(store, tmp_path, {"CVE-1999-93001": (FIXED, "high")})
    return ref


def end(runs: PipelineStore, run_id: str, status: str, when: timedelta, reason: str | None = None) -> None:
    runs.start(run_id, NOW + when - timedelta(minutes=1), OWNER)
    runs.finish(run_id, status, NOW + when, reason)  # type: ignore[arg-type]


def test_failed_runs_are_queued_again_with_back_off_then_given_up(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path
) -> None:
    store, catalog, runs = home
    ref = setup(home, tmp_path)
    scheduler = scheduler_for(store, catalog, runs)
    [first] = scheduler.evaluate(NOW).queued
    assert scheduler.evaluate(NOW + timedelta(hours=5)).queued == []  # queued: not queued twice
    end(runs, first.id, "failed", timedelta(minutes=10), "step failed")
    # back-off after the first failure: BACKOFF from the moment it ended, on the scheduler's clock
    assert scheduler.evaluate(NOW + timedelta(minutes=10) + BACKOFF - timedelta(seconds=1)).queued == []
    assert scheduler_for(store, catalog, runs).evaluate(NOW + timedelta(minutes=20)).queued == []
    [second] = scheduler_for(store, catalog, runs).evaluate(NOW + timedelta(minutes=10) + BACKOFF).queued
    assert second.trigger.type == "cve"
    assert second.trigger.cause == (
        f"CVE-1999-93001 (high): openssl 3.0.11-1~deb12u2 -> {FIXED} in {ref} (fixed in the archive); "
        f"attempt 2 of {MAX_ATTEMPTS}, after run {first.id} failed: step failed"
    )
    # interrupted: the daemon re-runs it once (trigger retry); the cve trigger waits for that re-run
    end(runs, second.id, "interrupted", timedelta(hours=1), "interrupted: the daemon stopped")
    retry = runs.enqueue("web", "retry", f"re-run of {second.id}", f"retry:{second.id}", NOW + timedelta(hours=1),
                         retry_of=second.id)  # fmt: skip
    assert retry is not None
    assert scheduler.evaluate(NOW + timedelta(hours=6)).queued == []
    end(runs, retry.id, "failed", timedelta(hours=7), "step failed again")
    # three runs for the cause did not succeed: recorded once as given up, never queued again
    result = scheduler.evaluate(NOW + timedelta(hours=12))
    assert result.queued == []
    [gave_up] = result.skipped
    assert (gave_up.trigger.type, gave_up.status) == ("cve", "skipped")
    assert gave_up.reason == (
        f"not queued again: {MAX_ATTEMPTS} runs for CVE-1999-93001 did not succeed (the last: run {retry.id} "
        "failed: step failed again); start one with: kiln pipelines run web"
    )
    again = scheduler_for(store, catalog, runs).evaluate(NOW + timedelta(hours=18))
    assert (again.queued, again.skipped) == ([], [])
    assert [r.status for r in runs.runs("web")] == ["skipped", "failed", "interrupted", "failed"]


def test_a_success_closes_the_cause(home: tuple[Store, Catalog, PipelineStore], tmp_path: Path) -> None:
    store, catalog, runs = home
    setup(home, tmp_path)
    [first] = scheduler_for(store, catalog, runs).evaluate(NOW).queued
    end(runs, first.id, "failed", timedelta(minutes=5), "step failed")
    [second] = scheduler_for(store, catalog, runs).evaluate(NOW + timedelta(minutes=5) + BACKOFF).queued
    end(runs, second.id, "succeeded", timedelta(hours=1))
    for hours in (2, 10, 19):  # (the schedule fires at 04:00, 20 hours on)
        result = scheduler_for(store, catalog, runs).evaluate(NOW + timedelta(hours=hours))
        assert (result.queued, result.skipped) == ([], [])


def test_the_daemon_requeues_a_failed_cve_run_after_the_back_off(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path
) -> None:
    store, catalog, runs = home
    setup(home, tmp_path)
    clock = FakeClock(NOW)
    runner = CatalogRunner(catalog)
    daemon = Daemon(
        runs, runner, scheduler_for(store, catalog, runs), PipelineRecipes(catalog), tmp_path, clock
    )
    daemon.tick()
    [request] = runner.started
    assert request.options.refresh
    runner.complete(ok=False)
    daemon.tick()  # the run fails; its cause stays open, but within the back-off
    [failed] = runs.runs("web")
    assert (failed.status, failed.reason) == ("failed", "step failed")
    clock.advance(seconds=BACKOFF.total_seconds() - 1)
    daemon.tick()
    assert len(runner.started) == 1
    clock.advance(seconds=1)
    daemon.tick()
    assert len(runner.started) == 2 and runner.started[1].options.refresh
    runner.complete(ok=True)
    daemon.tick()
    assert [r.status for r in runs.runs("web")] == ["succeeded", "failed"]
    clock.advance(hours=6)
    daemon.tick()
    assert len(runner.started) == 2


def test_cause_state_follows_the_runs_and_the_daemons_reruns(world: World) -> None:
    """On SQLite and PostgreSQL: a cause's runs are those with its key and the re-runs of those."""
    world.apply(world.pipeline("app"))
    key, now = "cve:app@1.0.0/1:CVE-1999-93001", world.clock()
    assert cause_state(world.catalog, "app", key).failures == 0
    first = world.store.enqueue("app", "cve", "CVE-1999-93001", key, now)
    assert first is not None and cause_state(world.catalog, "app", key).active
    world.store.start(first.id, now, OWNER)
    world.store.finish(first.id, "interrupted", now + timedelta(minutes=3), "the daemon stopped")
    state = cause_state(world.catalog, "app", key)
    assert (state.handled, state.active, state.failures) == (False, False, 1)
    assert state.retry_at == now + timedelta(minutes=3) + BACKOFF
    assert state.describe_last() == f"run {first.id} interrupted: the daemon stopped"
    other = world.store.enqueue("app", "cve", "CVE-1999-93002", key + ",CVE-1999-93002", now)
    assert other is not None and not cause_state(world.catalog, "app", key).active  # another cause
    rerun = world.store.enqueue("app", "retry", "re-run", f"retry:{first.id}", now, retry_of=first.id)
    assert rerun is not None and cause_state(world.catalog, "app", key).active
    world.store.start(rerun.id, now, OWNER)
    world.store.finish(rerun.id, "failed", now + timedelta(hours=1), "step failed")
    state = cause_state(world.catalog, "app", key)
    assert (state.failures, state.retry_at) == (2, now + timedelta(hours=1) + 2 * BACKOFF)
    again = world.store.enqueue("app", "cve", "CVE-1999-93001", key, now)
    assert again is not None
    world.store.start(again.id, now, OWNER)
    world.store.finish(again.id, "succeeded", now + timedelta(hours=3))
    assert cause_state(world.catalog, "app", key).handled
