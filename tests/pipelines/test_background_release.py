"""A successful build's release (distribution, lifecycle) runs beside the daemon's loop, not in it: a
slow publish (here a real directory target whose release blocks on an event) does not stop other
pipelines' runs from starting or schedules from firing; SIGTERM waits for it, a second one leaves it;
a release a dead daemon left unfinished is done again by the next one, once."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest

from kiln.errors import KilnError
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.records import PipelineRecord, RunRecord
from kiln.pipelines.release import Release, Released
from kiln.settings import Settings
from kiln.store import Store
from tests.pipelines.conftest import World

TARGET = "distribution:\n  - name: out\n    type: directory\n    path: published\n"
DAILY = "schedule: 0 4 * * *\ntimezone: Europe/Berlin\n"


class SlowRelease(Release):
    """The real release, after ``gate`` opens (a big upload, an AMI import)."""

    def __init__(self, store: Store, world: World) -> None:
        super().__init__(store, world.catalog, Settings(), {})
        self.gate = threading.Event()
        self.entered = threading.Event()

    def after(self, pipeline: PipelineRecord, run_id: str, build_id: str, now: datetime) -> Released:
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().after(pipeline, run_id, build_id, now)


def distributed(world: World, name: str, body: str = "") -> None:
    path = world.pipeline(name, "distribution: [out]\n" + body)
    with open(world.folder / f"{name}.recipe.yaml", "a") as recipe:
        recipe.write(TARGET)
    world.apply(path)


def slow_daemon(world: World, workers: int = 1) -> tuple[Daemon, SlowRelease]:
    worker = world.daemon(workers)
    release = SlowRelease(Store.open_at(world.folder / "home", world.folder / "cache"), world)
    worker.release = release
    return worker, release


def settle(worker: Daemon) -> None:
    assert worker.releases.wait(60)
    worker.tick()


def releasing(world: World, worker: Daemon, release: SlowRelease, name: str) -> str:
    """Queue a manual run of ``name``, build it, and return its id once its release has begun."""
    world.store.enqueue(name, "manual", "test", f"manual:{name}", world.clock())
    worker.tick()
    world.runner.complete()
    worker.tick()
    assert release.entered.wait(30)
    [run] = world.store.runs(name)
    assert run.status == "running" and run.reason is not None
    assert run.reason.startswith(f"releasing: build {run.build_id} succeeded; distributing to out (since ")
    return run.id


def test_a_slow_release_does_not_hold_up_other_runs_or_schedules(world: World) -> None:
    distributed(world, "slow")
    world.apply(world.pipeline("other"), world.pipeline("timed", DAILY))
    worker, release = slow_daemon(world, workers=1)
    run_id = releasing(world, worker, release, "slow")
    # the release does not take the one build worker: another pipeline's run starts meanwhile
    world.store.enqueue("other", "manual", "test", "manual:other", world.clock())
    worker.tick()
    assert world.runner.images == ["slow", "other"]
    assert world.store.runs("other")[0].status == "running"
    world.clock.advance(days=1)  # the third pipeline's schedule fires during the release
    worker.tick()
    [timed] = world.store.runs("timed")
    assert timed.trigger.type == "schedule" and timed.status == "queued"
    world.runner.complete()
    worker.tick()
    assert world.store.runs("other")[0].status == "succeeded"
    assert world.store.runs("timed")[0].status == "running"
    assert world.store.run(run_id).status == "running" and list(worker.releasing) == [run_id]
    # the same pipeline's next run waits for the release: it is part of the run
    world.store.enqueue("slow", "manual", "again", "manual:slow-2", world.clock())
    world.runner.complete()
    worker.tick()
    assert world.store.runs("slow")[0].status == "queued"
    release.gate.set()
    settle(worker)
    done = world.store.run(run_id)
    assert done.status == "succeeded" and done.reason == "distributed out (directory) published"
    assert (world.folder / "published/slow/1.0.0-1/manifest.json").is_file()
    assert world.store.runs("slow")[0].status == "running"  # now the next one starts


def test_sigterm_waits_for_a_running_release(world: World) -> None:
    distributed(world, "web")
    worker, release = slow_daemon(world)
    run_id = releasing(world, worker, release, "web")
    wake = threading.Event()
    code: list[int] = []
    serving = threading.Thread(target=lambda: code.append(worker.serve(wake)))
    serving.start()
    worker.stop()
    wake.set()
    serving.join(1.5)
    assert serving.is_alive() and world.store.run(run_id).status == "running"
    release.gate.set()
    serving.join(30)
    assert not serving.is_alive() and code == [0]
    assert world.store.run(run_id).status == "succeeded"


def test_a_second_sigterm_leaves_the_release_and_says_how_to_finish_it(world: World) -> None:
    distributed(world, "web")
    worker, release = slow_daemon(world)
    run_id = releasing(world, worker, release, "web")
    worker.stop()
    worker.tick()
    assert world.store.run(run_id).status == "running"  # the first signal waits
    worker.stop()
    worker.tick()
    cancelled = world.store.run(run_id)
    assert cancelled.status == "cancelled" and not worker.releasing
    assert cancelled.reason == (
        "cancelled during its release (the daemon was told to stop twice): "
        "the image web@1.0.0/1 is kept; publish it with: kiln distribute web@1.0.0/1"
    )
    release.gate.set()  # the abandoned thread ends; the run's record stays as it is
    settle(worker)
    assert world.store.run(run_id) == cancelled


def test_a_release_cut_short_by_a_dead_daemon_is_done_again_once(world: World) -> None:
    distributed(world, "web")
    first, stuck = slow_daemon(world)
    first.owner = (first.owner[0], 2**22 + 1, None)  # beyond pid_max: a daemon that is gone
    run_id = releasing(world, first, stuck, "web")
    # the next daemon releases it again, and is cut short too
    second, stuck_again = slow_daemon(world)
    second.owner = (second.owner[0], 2**22 + 2, None)
    assert second.recover() == []
    assert stuck_again.entered.wait(30)
    again = world.store.run(run_id)
    assert again.status == "running" and again.reason is not None
    assert again.reason.startswith("releasing again: build ")
    # a third daemon does not try a third time: the image is kept, the run says how to publish it
    third = world.daemon()
    assert third.recover() == []
    interrupted = world.store.run(run_id)
    assert interrupted.status == "interrupted" and interrupted.reason == (
        f"interrupted: its daemon (pid {2**22 + 2} on {second.owner[0]}) stopped during its release, "
        "twice; the image web@1.0.0/1 is kept; publish it with: kiln distribute web@1.0.0/1"
    )
    assert world.runner.started and len(world.runner.started) == 1  # never rebuilt
    for gate in (stuck, stuck_again):
        gate.gate.set()
    assert first.releases.wait(30) and second.releases.wait(30)


def test_a_release_cut_short_once_is_finished_by_the_next_daemon(world: World) -> None:
    distributed(world, "web")
    first, stuck = slow_daemon(world)
    first.owner = (first.owner[0], 2**22 + 1, None)
    run_id = releasing(world, first, stuck, "web")
    second = world.daemon()
    second.release = Release(Store.open_at(world.folder / "home", world.folder / "cache"), world.catalog,
                             Settings(), {})  # fmt: skip
    assert second.recover() == []
    settle(second)
    done = world.store.run(run_id)
    assert done.status == "succeeded" and done.reason == (
        f"released again: its daemon (pid {2**22 + 1} on {first.owner[0]}) stopped during the release; "
        "distributed out (directory) published"
    )
    assert (world.folder / "published/web/1.0.0-1/manifest.json").is_file()
    stuck.gate.set()  # the dead daemon's thread (alive in this test's process) ends: nothing changes
    assert first.releases.wait(30)
    assert world.store.run(run_id) == done


def test_a_release_that_raises_fails_the_run_even_when_recording_it_fails_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    distributed(world, "web")
    worker, release = slow_daemon(world)

    gate = threading.Event()  # the release ends after the tick that started it (else that tick records it)

    def broken(pipeline: PipelineRecord, run_id: str, build_id: str, now: datetime) -> Released:
        gate.wait(30)
        raise RuntimeError("the upload library fell over")

    release.after = broken  # type: ignore[method-assign]
    world.store.enqueue("web", "manual", "test", "manual:1", world.clock())
    worker.tick()
    world.runner.complete()
    worker.tick()
    gate.set()
    assert worker.releases.wait(30)
    real_finish = world.store.finish

    def locked(*args: Any, **kwargs: Any) -> RunRecord:
        world.store.finish = real_finish  # type: ignore[method-assign]
        raise KilnError("database is locked")

    world.store.finish = locked  # type: ignore[method-assign]
    assert worker.safe_tick() is False and "tick failed, trying again: database is locked" in caplog.text
    [run] = world.store.runs("web")
    assert run.status == "running" and list(worker.releasing) == [run.id]  # not lost: kept for later
    assert worker.safe_tick() is True
    failed = world.store.run(run.id)
    assert (
        failed.status == "failed"
        and failed.reason == "the release failed: RuntimeError: the upload library fell over"
    )
    assert worker.failed == 1 and not worker.releasing
