"""The test stage's time bound (kiln.verify.deadline) on real processes: a step's own timeout is
clamped to what is left of the stage, the process running when it passes is killed with its process
tree, and nothing starts once it has passed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.sandbox.run import CommandTimedOut
from kiln.toe.targets import HostTarget
from kiln.verify.deadline import BoundedTarget, TestDeadline


def alive(token: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and token in (entry / "cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def test_clamp_takes_the_smaller_bound() -> None:
    deadline = TestDeadline(100)
    assert deadline.clamp(5) == 5
    assert 99 < deadline.clamp(None) <= 100 and 99 < deadline.clamp(7200) <= 100
    assert not deadline.expired


def test_the_running_process_tree_is_killed_at_the_bound_and_nothing_starts_after() -> None:
    token = f"{2000 + uuid.uuid4().int % 5000}.{uuid.uuid4().int % 1000:03d}"
    target = BoundedTarget(HostTarget(), TestDeadline(1.5))
    started = time.monotonic()
    with pytest.raises(CommandTimedOut):  # a child in the background and one in the foreground
        target.execute(["sh", "-c", f"sleep {token} & sleep {token}; wait"], env={}, timeout=3600,
                       on_output=lambda stream, line: None)  # fmt: skip
    assert 1.4 < time.monotonic() - started < 10
    assert not alive(f"sleep\0{token}")
    assert target.deadline.expired
    with pytest.raises(KilnError, match=r"the test timeout of 1.5s is spent: not started"):
        target.execute(["true"], env={}, timeout=None, on_output=lambda stream, line: None)


def test_the_failure_names_the_bound() -> None:
    failure = TestDeadline(3).failure("recipe web: ", "fresh container instance", "checks")
    assert failure.message == (
        "recipe web: test stage on a fresh container instance exceeded the test timeout of 3s during "
        "component checks: its processes were killed and the instance torn down"
    )
    assert failure.hint is not None and "tests.timeout_minutes" in failure.hint
