"""A real ``kiln daemon`` killed with SIGKILL in the middle of a real build: the next daemon ends the
orphaned build, marks the run interrupted with the reason, re-queues it once, and after a double
SIGTERM (finish, then cancel) nothing is left: no processes, no mounts (/proc/self/mountinfo)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.documents import create_file_component
from tests.e2e.conftest import KILN, kiln
from tests.e2e.test_build_failure import _step_started, processes_using
from tests.e2e.test_faults import TEST_SLEEPS

pytestmark = pytest.mark.e2e

RECIPE = """\
name: sleepy
version: 0.1.0
parent: debian:bookworm
labels: {{test-run: "{run}"}}
components:
  - path: waits-in-test.yaml
"""


def recipe(component: str = "waits-in-test") -> str:
    """The recipe with a label of its own: a distinct image, so no earlier run's test pass is cached."""
    return RECIPE.format(run=uuid.uuid4().hex).replace("waits-in-test", component)


PIPELINE = """\
name: sleepy
recipe: recipe.yaml
triggers: [manual]
"""


def _daemon(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen([str(KILN), "daemon", "--log-format", "json"], stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "KILN_HOME": str(home)})  # fmt: skip


def _until(condition: Callable[[], Any], what: str, seconds: float = 300) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _runs(home: Path) -> list[dict[str, Any]]:
    return kiln("pipelines", "history", "sleepy", "--json", home=home).json()  # type: ignore[no-any-return]


def _mountinfo_under(home: Path) -> list[str]:
    prefix = str(home.resolve())
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if line.split()[4] == prefix or line.split()[4].startswith(prefix + "/")]


def test_sigkilled_daemon_restart_interrupts_and_requeues_once(tmp_path: Path) -> None:
    (tmp_path / "waits-in-test.yaml").write_text(TEST_SLEEPS)
    (tmp_path / "recipe.yaml").write_text(recipe())
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    home, log = tmp_path / "home", tmp_path / "daemon.log"
    kiln("pipelines", "apply", str(tmp_path / "pipeline.yaml"), home=home)
    kiln("pipelines", "run", "sleepy", home=home)
    first = _daemon(home, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        _until(lambda: _step_started(home, "Wait"), "the build's test step")
        [run] = _runs(home)
        assert run["status"] == "running" and run["build_id"]
        first.kill()  # SIGKILL: no clean-up of any kind
        first.wait()
        assert [r["status"] for r in _runs(home)] == ["running"]  # what the dead daemon left
        assert processes_using(home)  # its build worker lives on, orphaned, until a daemon starts

        second = _daemon(home, log)
        runs = _until(
            lambda: (r := _runs(home)) and len(r) == 2 and r[0]["status"] == "running" and r, "the re-run"
        )
        retry, interrupted = runs
        assert interrupted["id"] == run["id"] and interrupted["status"] == "interrupted"
        assert f"interrupted: the daemon (pid {first.pid} on " in interrupted["reason"]
        assert f"during build {run['build_id']}; re-queued once" in interrupted["reason"]
        assert retry["retry_of"] == run["id"] and retry["trigger"]["type"] == "retry"
        old_build = kiln("builds", "show", run["build_id"], "--json", home=home).json()
        assert old_build["status"] == "failed"
        jobs = [p for p in (home / "jobs").iterdir() if (p / "build").is_file()]
        old_job = next(p for p in jobs if (p / "build").read_text().strip() == run["build_id"])
        old_pid = int((old_job / "pid").read_text().split()[0])
        assert (
            not Path(f"/proc/{old_pid}").exists()
            or b"kiln" not in Path(f"/proc/{old_pid}/cmdline").read_bytes()
        )

        _until(lambda: _step_started_twice(home), "the re-run's test step")
        second.send_signal(signal.SIGTERM)  # finish the running build...
        time.sleep(1)
        assert second.poll() is None
        second.send_signal(signal.SIGTERM)  # ...no: cancel it
        assert second.wait(timeout=120) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        _kill_leftovers(home)
    runs = _runs(home)
    assert [r["status"] for r in runs] == ["cancelled", "interrupted"]  # re-queued once, nothing more
    assert processes_using(home) == []
    assert _mountinfo_under(home) == []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any("interrupted" in e["message"] for e in events) and all(e["level"] for e in events)


def _step_started_twice(home: Path) -> bool:
    starts = 0
    for path in (home / "logs").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if (
                event.get("kind") == "start"
                and event.get("scope") == "step"
                and "Wait" in event.get("message", "")
            ):
                starts += 1
    return starts >= 2


MARKER = create_file_component(
    "{{ Greeting }}", name="marker", path="/etc/kiln-marker", parameters={"Greeting": "hello"}
)


def test_once_builds_a_queued_manual_run_with_its_parameters(tmp_path: Path) -> None:
    (tmp_path / "marker.yaml").write_text(MARKER)
    (tmp_path / "recipe.yaml").write_text(recipe("marker"))
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    home = tmp_path / "home"
    kiln("pipelines", "apply", str(tmp_path / "pipeline.yaml"), home=home)
    refused = kiln("pipelines", "run", "sleepy", "--param", "Greting=hi", home=home, check=False)
    assert refused.returncode == 2 and "Greting: no component of sleepy declares it" in refused.stderr
    kiln("pipelines", "run", "sleepy", "--param", "Greeting=moin", home=home)
    kiln("daemon", "--once", home=home)
    [run] = _runs(home)
    assert run["status"] == "succeeded" and run["trigger"] == {
        "type": "manual",
        "cause": "kiln pipelines run --param Greeting=moin",
    }
    image = kiln("images", "show", "sleepy", "--json", home=home).json()
    assert image["components"][0]["parameters"] == {"Greeting": "moin"}
    assert image["build_id"] == run["build_id"]


def test_sigterm_lets_the_running_build_finish_then_exits(tmp_path: Path) -> None:
    (tmp_path / "marker.yaml").write_text(MARKER)
    (tmp_path / "recipe.yaml").write_text(recipe("marker"))
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    home, log = tmp_path / "home", tmp_path / "daemon.log"
    kiln("pipelines", "apply", str(tmp_path / "pipeline.yaml"), home=home)
    kiln("pipelines", "run", "sleepy", home=home)
    kiln("pipelines", "run", "sleepy", home=home)
    daemon = _daemon(home, log)
    try:
        _until(lambda: any(r["status"] == "running" for r in _runs(home)), "the first run to start")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=300) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        _kill_leftovers(home)
    assert [r["status"] for r in _runs(home)] == ["queued", "succeeded"]  # finished; the next one waits
    assert processes_using(home) == [] and _mountinfo_under(home) == []


def _kill_leftovers(home: Path) -> None:
    """After a failed assertion: build workers of this test's data dir must not outlive it."""
    for pid in processes_using(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
