"""The time source of the scheduler and daemon: tests pass their own, nothing sleeps for a schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
