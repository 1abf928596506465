"""Fencing of queued builds: only the attempt a worker claimed last may write the build's result."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kiln.catalog.models import BuildAttemptRow, BuildJobRow
from kiln.errors import KilnError


class Superseded(KilnError):
    """This attempt was given up for lost and the build handed to another one: it records nothing."""


def check_fence(s: Session, build_id: str, attempt: int) -> None:
    """Raise :class:`Superseded` unless ``attempt`` is the build's current attempt; on PostgreSQL the
    row stays locked until the caller's transaction ends (a retry cannot slip in between)."""
    current = s.scalar(select(BuildJobRow.attempt).where(BuildJobRow.build_id == build_id).with_for_update())
    if current is None:
        raise KilnError(f"build {build_id} was not queued; it has no attempts")
    if current != attempt:
        raise Superseded(
            f"attempt {attempt} of build {build_id} was superseded by attempt {current}; "
            "its result is not recorded"
        )


def close_attempt(s: Session, build_id: str, attempt: int, outcome: str, error: str | None = None) -> None:
    """Record how ``attempt`` ended, in the transaction that records the build's result."""
    s.execute(
        update(BuildAttemptRow)
        .where(
            BuildAttemptRow.build_id == build_id,
            BuildAttemptRow.attempt == attempt,
            BuildAttemptRow.finished.is_(None),
        )
        .values(finished=datetime.now(UTC), outcome=outcome, error=error)
    )
