"""The daemon's decisions over a real catalog with a moved clock: catch-up once, skip reasons,
de-duplication, no overlap, worker limits, cascades in topological order, recovery of runs a dead
daemon left running, auto-disable."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from kiln.catalog.models import EventRow
from kiln.errors import KilnError
from kiln.events.emit import to_event
from kiln.events.model import Event
from kiln.pipelines.builds import BuildState
from kiln.pipelines.cascade import CascadeCycle
from tests.pipelines.conftest import World

DAILY = "schedule: 0 4 * * *\ntimezone: Europe/Berlin\n"


def statuses(world: World, name: str) -> list[tuple[str, str]]:
    return [(r.trigger.type, r.status) for r in reversed(world.store.runs(name))]


def test_a_schedule_missed_for_days_runs_once(world: World) -> None:
    world.apply(world.pipeline("web", DAILY))
    daemon = world.daemon()
    world.clock.advance(days=5)  # the daemon was down: five 04:00s passed
    daemon.tick()
    [run] = world.store.runs("web")
    assert run.trigger.type == "schedule" and run.status == "running"
    assert "at 2026-12-07T04:00+01:00" in run.trigger.cause and "caught up" in run.trigger.cause
    world.runner.complete()
    for _ in range(3):
        daemon.tick()
    assert statuses(world, "web") == [("schedule", "succeeded")]
    world.clock.now = datetime(2026, 12, 8, 3, 0, 30, tzinfo=UTC)  # 04:00:30 in Berlin: on time
    daemon.tick()
    assert statuses(world, "web") == [("schedule", "succeeded"), ("schedule", "running")]
    on_time = world.store.runs("web")[0].trigger.cause
    assert "at 2026-12-08T04:00+01:00" in on_time and "caught up" not in on_time


def test_updates_available_skips_with_the_reason_when_nothing_changed(world: World) -> None:
    world.apply(world.pipeline("web", DAILY + "when: updates-available\n"))
    daemon = world.daemon()
    world.clock.advance(days=1)
    daemon.tick()
    [first] = world.store.runs("web")
    assert "no image web built yet" in first.trigger.cause
    world.runner.complete()
    daemon.tick()
    world.clock.advance(days=1)
    daemon.tick()
    skipped = world.store.runs("web")[0]
    assert skipped.status == "skipped"
    assert skipped.reason is not None and skipped.reason.startswith(
        "no updates: parent, recipe and components unchanged since web@1.0.0/1"
    )
    # A changed recipe is an update.
    recipe = world.folder / "web.recipe.yaml"
    recipe.write_text(recipe.read_text().replace("version: 1.0.0", "version: 1.0.0\ndescription: changed"))
    world.clock.advance(days=1)
    daemon.tick()
    assert world.store.runs("web")[0].status == "running"
    assert "the recipe changed since web@1.0.0/1" in world.store.runs("web")[0].trigger.cause


def test_a_cause_already_queued_is_not_queued_twice(world: World) -> None:
    world.apply(world.pipeline("web"))
    now = world.clock()
    assert world.store.enqueue("web", "cve", "CVE-2026-1", "cve:CVE-2026-1", now) is not None
    assert world.store.enqueue("web", "cve", "CVE-2026-1", "cve:CVE-2026-1", now) is None
    assert world.store.enqueue("web", "cve", "CVE-2026-2", "cve:CVE-2026-2", now) is not None


def test_runs_of_one_pipeline_never_overlap_and_workers_bound_the_rest(world: World) -> None:
    world.apply(*(world.pipeline(n) for n in ("a", "b", "c")))
    now = world.clock()
    for name, key in (("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")):
        world.store.enqueue(name, "manual", "test", f"manual:{key}", now)
    daemon = world.daemon(workers=2)
    daemon.tick()
    assert world.runner.images == ["a", "b"]  # a's second run waits for its first; c for a worker
    world.runner.complete()
    daemon.tick()
    assert world.runner.images == ["a", "b", "a", "c"]


def test_a_cascade_builds_three_images_in_topological_order(world: World) -> None:
    # Applied child first: the order comes from the graph, not from the files.
    top = world.pipeline("top", DAILY, parent="kiln:mid@1.x")
    mid = world.pipeline("mid", DAILY, parent="kiln:base@1.x")
    base = world.pipeline("base", DAILY)
    world.apply(top, mid, base)
    daemon = world.daemon(workers=3)
    world.clock.advance(days=1)  # all three are due at once
    daemon.tick()
    assert world.runner.images == ["base"]  # mid and top wait for their upstream
    for expected in (["base", "mid"], ["base", "mid", "top"]):
        world.runner.complete()
        daemon.tick()
        daemon.tick()
        assert world.runner.images == expected
    world.runner.complete()
    for _ in range(3):
        daemon.tick()
    assert world.runner.images == ["base", "mid", "top"]
    # The children's scheduled runs waited for their parents and took the new parent version in:
    # one child build per parent version, the cause recorded.
    assert statuses(world, "mid") == [("schedule", "succeeded")]
    assert "; new parent image base@1.0.0/1 (sha256:" in world.store.runs("mid")[0].trigger.cause
    assert "; new parent image mid@1.0.0/1 (sha256:" in world.store.runs("top")[0].trigger.cause
    # A new version of base (a manual run) flows down again, once per image.
    world.store.enqueue("base", "manual", "test", "manual:again", world.clock())
    for _ in range(4):
        daemon.tick()
        world.runner.complete()
    daemon.tick()
    assert world.runner.images[3:] == ["base", "mid", "top"]
    assert statuses(world, "top") == [("schedule", "succeeded"), ("parent", "succeeded")]
    assert world.store.runs("top")[0].trigger.cause.startswith("new parent image mid@1.0.0/2 (sha256:")


def test_a_cycle_is_refused_naming_it_and_nothing_is_applied(world: World) -> None:
    a = world.pipeline("a", parent="kiln:c@1.x")
    b = world.pipeline("b", parent="kiln:a@1.x")
    c = world.pipeline("c", parent="kiln:b@1.x")
    world.apply(a, b)  # no cycle yet
    with pytest.raises(CascadeCycle) as refused:
        world.apply(c)
    message = str(refused.value)
    assert "cycle" in message and all(f"{n} ({n})" in message for n in "abc")
    assert refused.value.exit_code == 2
    assert [p.name for p in world.store.pipelines()] == ["a", "b"]


def test_runs_of_a_dead_daemon_are_interrupted_and_requeued_once(world: World) -> None:
    world.apply(world.pipeline("web"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    first = world.daemon()
    first.owner = (first.owner[0], int(dead.stdout), None)  # a daemon that has since died
    world.store.enqueue("web", "manual", "nightly check", "manual:1", world.clock())
    first.tick()
    [run] = world.store.runs("web")
    assert run.status == "running" and run.build_id
    second = world.daemon()
    [retry] = second.recover()
    interrupted = world.store.run(run.id)
    assert interrupted.status == "interrupted"
    assert interrupted.reason is not None and "the daemon (pid" in interrupted.reason
    assert f"during build {run.build_id}" in interrupted.reason and "re-queued once" in interrupted.reason
    assert world.runner.orphans == [(f"job-{run.build_id[:8]}", run.build_id)]
    assert world.catalog.get_build(run.build_id).status == "failed"
    assert (
        retry.retry_of == run.id and retry.trigger.type == "retry" and "nightly check" in retry.trigger.cause
    )
    assert second.recover() == []  # nothing more to recover: not queued twice
    # The re-run is interrupted too: it is not re-queued again.
    second.owner = first.owner
    second.tick()
    second.running.clear()
    assert world.daemon().recover() == []
    again = world.store.run(retry.id)
    assert (
        again.status == "interrupted" and again.reason is not None and "not re-queued again" in again.reason
    )


def test_a_build_still_running_on_a_queue_worker_is_followed_not_rerun(world: World) -> None:
    world.apply(world.pipeline("web"))
    world.runner.remote = True
    first = world.daemon()
    first.owner = (first.owner[0], 2**22 + 1, None)  # beyond pid_max: a daemon that is gone
    world.store.enqueue("web", "manual", "x", "manual:1", world.clock())
    first.tick()
    [run] = world.store.runs("web")
    second = world.daemon()
    assert second.recover() == [] and list(second.running) == [run.id]
    assert world.store.owners()[0][2][1] == second.owner[1]  # the run is the new daemon's now
    assert world.daemon().recover() == []  # a third daemon sees a live owner: leaves it alone
    world.runner.complete()
    second.tick()
    assert [(r.status, r.build_id) for r in world.store.runs("web")] == [("succeeded", run.build_id)]
    assert len(world.runner.started) == 1


def test_consecutive_failures_disable_and_a_manual_success_re_enables(world: World) -> None:
    world.apply(world.pipeline("web", DAILY + "auto_disable_after: 2\n"))
    daemon = world.daemon()
    for _ in range(2):
        world.clock.advance(days=1)
        daemon.tick()
        world.runner.complete(ok=False)
        daemon.tick()
    web = world.store.get("web")
    assert not web.enabled and web.disabled_reason and "auto-disabled after 2" in web.disabled_reason
    world.clock.advance(days=1)
    daemon.tick()
    skipped = world.store.runs("web", limit=1)[0]  # no new scheduled build, and the reason why
    assert skipped.status == "skipped" and skipped.reason is not None
    assert skipped.reason.startswith("pipeline disabled: auto-disabled after 2 consecutive failed runs")
    world.store.enqueue("web", "manual", "fixed", "manual:fix", world.clock())
    daemon.tick()
    world.runner.complete()
    daemon.tick()
    assert world.store.get("web").enabled and world.store.get("web").consecutive_failures == 0


def test_stop_finishes_running_builds_and_a_second_stop_cancels(world: World) -> None:
    world.apply(world.pipeline("a"), world.pipeline("b"))
    world.store.enqueue("a", "manual", "x", "manual:a", world.clock())
    world.store.enqueue("b", "manual", "x", "manual:b", world.clock())
    daemon = world.daemon()
    daemon.tick()
    daemon.stop()
    daemon.tick()
    assert world.runner.images == ["a"] and daemon.running  # b does not start; a keeps running
    daemon.stop()
    daemon.tick()
    assert not daemon.running
    assert world.store.runs("a")[0].status == "cancelled"
    assert world.store.runs("b")[0].status == "queued"  # the next daemon builds it


def test_once_builds_what_is_due_and_the_cascade_it_sets_off(world: World) -> None:
    world.apply(world.pipeline("top", parent="kiln:mid@1.x"), world.pipeline("mid", parent="kiln:base@1.x"),
                world.pipeline("base", DAILY))  # fmt: skip
    world.runner.instant = True
    world.clock.advance(days=1)
    assert world.daemon().once(threading.Event()) == 0
    assert world.runner.images == ["base", "mid", "top"]
    assert [r.trigger.type for p in ("base", "mid", "top") for r in world.store.runs(p)] == [
        "schedule",
        "parent",
        "parent",
    ]
    assert world.daemon().once(threading.Event()) == 0  # nothing new: nothing built
    assert world.runner.images == ["base", "mid", "top"]


def test_reapplying_keeps_state_and_a_new_timetable_starts_now(world: World) -> None:
    path = world.pipeline("web", DAILY)
    assert world.apply(path) == [("web", "created")]
    assert world.apply(path) == [("web", "unchanged")]
    world.clock.advance(days=2)
    path.write_text(path.read_text().replace("0 4 * * *", "30 5 * * *"))
    assert world.apply(path) == [("web", "updated")]
    daemon = world.daemon()
    daemon.tick()
    assert world.store.runs("web") == []  # the old schedule's missed mornings are not caught up
    world.clock.advance(days=1)
    daemon.tick()
    [run] = world.store.runs("web")
    assert "cron 30 5 * * * (Europe/Berlin)" in run.trigger.cause


def test_a_build_that_finished_while_no_daemon_ran_is_not_rebuilt(world: World) -> None:
    world.apply(world.pipeline("web"))
    first = world.daemon()
    first.owner = (first.owner[0], 2**22 + 1, None)  # beyond pid_max: a daemon that is gone
    world.store.enqueue("web", "manual", "x", "manual:1", world.clock())
    first.tick()
    world.runner.complete()  # the orphaned worker recorded its image
    assert world.daemon().recover() == []
    [run] = world.store.runs("web")
    assert (
        run.status == "succeeded" and run.reason is not None and "finished while no daemon ran" in run.reason
    )


def test_a_failing_tick_is_logged_and_the_next_one_carries_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.apply(world.pipeline("web"))
    world.store.enqueue("web", "manual", "x", "manual:1", world.clock())
    daemon = world.daemon()
    daemon.tick()
    real_state = world.runner.state

    def flaky(job: str, build_id: str) -> tuple[BuildState, str | None]:
        world.runner.state = real_state  # type: ignore[method-assign]
        raise KilnError("database is locked")

    world.runner.state = flaky  # type: ignore[method-assign]
    assert daemon.safe_tick() is False and "tick failed, trying again: database is locked" in caplog.text
    world.runner.complete()
    assert daemon.safe_tick() is True
    assert world.store.runs("web")[0].status == "succeeded"


def test_updates_available_sees_a_new_parent_version(world: World) -> None:
    world.apply(world.pipeline("base"),
                world.pipeline("app", DAILY + "when: updates-available\ntriggers: [manual]\n", parent="kiln:base@1.x"))  # fmt: skip
    daemon = world.daemon()
    world.runner.instant = True
    world.store.enqueue("base", "manual", "x", "manual:1", world.clock())
    daemon.tick()
    world.clock.advance(days=1)
    daemon.tick()  # app: no image yet, built on base/1
    world.clock.advance(days=1)
    daemon.tick()
    assert (
        world.store.runs("app")[0].reason
        == "no updates: parent, recipe and components unchanged since app@1.0.0/1 (archive updates are not checked yet)"
    )
    world.store.enqueue("base", "manual", "x", "manual:2", world.clock())
    daemon.tick()  # base/2
    world.clock.advance(days=1)
    daemon.tick()
    daemon.tick()
    newest = world.store.runs("app")[0]
    assert newest.status == "succeeded" and "parent base has a new version (sha256:" in newest.trigger.cause
    assert [r.trigger.type for r in world.store.runs("app")] == [
        "schedule"
    ] * 3  # no parent trigger configured


def pipeline_events(world: World) -> list[Event]:
    with world.catalog.session() as s:
        rows = s.scalars(select(EventRow).where(EventRow.pipeline.is_not(None)).order_by(EventRow.id)).all()
        return [to_event(r) for r in rows]


def test_every_run_transition_is_recorded_as_an_event_with_it(world: World) -> None:
    world.apply(world.pipeline("web", DAILY + "when: updates-available\n"))
    daemon = world.daemon()
    world.clock.advance(days=1)
    daemon.tick()
    world.runner.complete(ok=False)
    daemon.tick()
    world.clock.advance(days=1)
    daemon.tick()
    world.runner.complete()
    daemon.tick()
    world.clock.advance(days=1)
    daemon.tick()
    now = world.clock()
    assert world.store.enqueue("web", "manual", "x", "manual:1", now) is not None
    assert world.store.enqueue("web", "manual", "x", "manual:1", now) is None  # de-duplicated: no event
    found = pipeline_events(world)
    assert [(e.type.removeprefix("dev.kiln.pipeline."), e.data["trigger"]["type"]) for e in found] == [
        ("run-queued", "schedule"),
        ("run-failed", "schedule"),
        ("run-queued", "schedule"),
        ("run-succeeded", "schedule"),
        ("run-skipped", "schedule"),
        ("run-queued", "manual"),
    ]
    runs = {r.id: r for r in world.store.runs("web")}
    failed, skipped = found[1], found[4]
    assert failed.pipeline == "web" and failed.data["reason"] == "step failed"
    assert failed.data["build_id"] == runs[failed.data["run_id"]].build_id is not None
    assert skipped.subject == "pipelines/web" and skipped.data["run_id"] in runs
    assert skipped.data["reason"].startswith(
        "no updates: parent, recipe and components unchanged since web@1.0.0/1"
    )
