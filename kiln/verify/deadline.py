"""A time bound on a whole test stage (a pipeline's ``tests.timeout_minutes``, ``kiln build
--test-timeout``), over the per-step ``timeoutSeconds`` of the documents.

Every process a test step starts gets at most the stage's remaining time as its timeout, so the one
running when the bound passes is killed with its process tree by the subprocess gateway
(:func:`kiln.sandbox.run.run`); steps after it fail at once. The stage then fails with
:class:`TestsTimedOut`, naming the bound, whatever the documents' ``onFailure`` said.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from kiln.errors import KilnError, StepFailed
from kiln.sandbox.run import Completed, OutputCallback
from kiln.toe.targets import Target


class TestsTimedOut(StepFailed):
    """The test stage ran past its time bound."""

    __test__ = False  # not a pytest test class


class TestDeadline:
    """``seconds`` from now (monotonic clock); ``what`` says where the bound came from."""

    __test__ = False

    def __init__(self, seconds: float, what: str = "the test timeout") -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def clamp(self, timeout: float | None) -> float:
        """The smaller of a step's own ``timeout`` and the stage's remaining time."""
        left = max(self.remaining(), 0.0)
        return left if timeout is None else min(timeout, left)

    def failure(self, prefix: str, instance: str, running: str | None) -> TestsTimedOut:
        during = f" during component {running}" if running else ""
        return TestsTimedOut(
            f"{prefix}test stage on a {instance} exceeded {self.what} of {self.seconds:g}s{during}: "
            "its processes were killed and the instance torn down",
            hint="nothing was recorded; make the tests faster or raise the timeout "
            "(pipeline tests.timeout_minutes, kiln build --test-timeout)",
        )


class BoundedTarget:
    """``target`` whose processes never outlive ``deadline``."""

    def __init__(self, target: Target, deadline: TestDeadline) -> None:
        self.target = target
        self.deadline = deadline
        self.root: Path = target.root

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed:
        if self.deadline.expired:
            raise KilnError(f"{self.deadline.what} of {self.deadline.seconds:g}s is spent: not started")
        return self.target.execute(argv, env=env, timeout=self.deadline.clamp(timeout), on_output=on_output)
