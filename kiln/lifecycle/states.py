"""Lifecycle states of an image version and the legal moves between them (EC2 Image Builder's meanings).

* ``active``: usable for everything.
* ``deprecated``: still usable (as a parent, for distribution, for new test instances); users are warned.
* ``disabled``: kept, but not usable as a parent, for distribution, promotion or new test instances.
* ``retired``: artifacts deleted (:mod:`kiln.lifecycle.retire`); the catalog record, SBOMs, provenance,
  scan and compliance evidence are kept forever. Final: nothing leaves ``retired``.

Like Image Builder, a deprecated or disabled image may go back to ``active`` (and a disabled one to
``deprecated``). Every change is one row of ``image_state_changes``: who, when, why.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog import Catalog, ImageRecord
from kiln.catalog.models import ImageRow, StateChangeRow
from kiln.catalog.records import image_ref
from kiln.catalog.schemas import ImageState
from kiln.errors import KilnError, NotFound, UsageError
from kiln.events.emit import emit
from kiln.events.model import image_state_changed

State = ImageState
STATES: tuple[State, ...] = ("active", "deprecated", "disabled", "retired")
"""In order of progress: a policy only ever moves an image to a later state."""

TRANSITIONS: Mapping[State, frozenset[State]] = {
    "active": frozenset({"deprecated", "disabled", "retired"}),
    "deprecated": frozenset({"active", "disabled", "retired"}),
    "disabled": frozenset({"active", "deprecated", "retired"}),
    "retired": frozenset(),
}
UNUSABLE: frozenset[State] = frozenset({"disabled", "retired"})


class IllegalTransition(KilnError):
    """The requested state change is not allowed from the image's current state (exit code 1)."""


class ImageNotUsable(KilnError):
    """A disabled or retired image was asked for (distribution, promotion, a test instance, a parent)."""


class StateChange(BaseModel):
    """One recorded state change (JSON field names are a stable contract, like the catalog records)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    image: str
    from_state: State
    to_state: State
    actor: str
    reason: str
    at: datetime
    details: dict[str, Any]


def rank(state: str) -> int:
    return STATES.index(cast(State, state))


def check_transition(ref: str, current: str, target: str) -> None:
    """Raise :class:`IllegalTransition` (naming the legal moves) unless ``current`` → ``target`` is legal."""
    if target not in TRANSITIONS:
        raise UsageError(f"unknown state {target!r}", hint="states: " + ", ".join(STATES))
    if current == target:
        raise IllegalTransition(f"{ref} is already {current}")
    allowed = TRANSITIONS[cast(State, current)]
    if target not in allowed:
        if current == "retired":
            raise IllegalTransition(
                f"{ref} is retired: its artifacts are deleted, so it cannot become {target}",
                hint="retired is final; rebuild the recipe for a new version",
            )
        raise IllegalTransition(
            f"{ref} cannot go from {current} to {target}",
            hint=f"from {current}: " + ", ".join(s for s in STATES if s in allowed),
        )


def default_actor() -> str:
    """Who changes a state from the command line: the OS user (the API passes its token's name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _row(s: Session, catalog: Catalog, ref: str, *, lock: bool = False) -> ImageRow:
    """The image's row; ``lock``: held until the transaction ends (PostgreSQL's ``FOR UPDATE``; SQLite's
    writers are serialized at ``BEGIN IMMEDIATE``), so two changes cannot both start from one state."""
    image = catalog.get_image(ref)
    query = select(ImageRow).where(
        ImageRow.name == image.name, ImageRow.version == image.version, ImageRow.build_number == image.build
    )
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"no image {ref}")
    return row


def _record(row: StateChangeRow, ref: str) -> StateChange:
    return StateChange(
        id=row.id, image=ref, from_state=cast(State, row.from_state), to_state=cast(State, row.to_state),
        actor=row.actor, reason=row.reason, at=row.at, details=dict(row.details),
    )  # fmt: skip


def change_state(
    catalog: Catalog,
    ref: str,
    to: State,
    *,
    actor: str,
    reason: str,
    expect: State | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> StateChange:
    """Move image ``ref`` to ``to`` and record who, when and why, in one transaction.

    ``expect``: the state the caller planned from; a different current state refuses the change (a
    policy's plan is carried out exactly, or not at all for that image). Retiring through this function
    only records the state: :func:`kiln.lifecycle.retire.retire` also deletes the artifacts. The
    ``image.state-changed`` event is recorded in the same transaction.
    """
    if not reason.strip():
        raise UsageError("a reason is required for a state change", hint="e.g. --reason 'superseded by 1.3'")
    if not actor.strip():
        raise UsageError("an actor is required for a state change")
    with catalog.session(write=True) as s, s.begin():
        row = _row(s, catalog, ref, lock=True)
        if expect is not None and row.state != expect:
            raise IllegalTransition(
                f"{image_ref(row)} is {row.state}, not {expect} as planned; nothing changed",
                hint="plan again (kiln lifecycle apply POLICY --dry-run)",
            )
        check_transition(image_ref(row), row.state, to)
        change = StateChangeRow(
            image_id=row.id, from_state=row.state, to_state=to, actor=actor.strip(), reason=reason.strip(),
            at=now or datetime.now(UTC), details=dict(details or {}),
        )  # fmt: skip
        previous, row.state = row.state, to
        s.add(change)
        s.flush()
        emit(s, image_state_changed(image_ref(row), previous, to, change.reason))  # with the change, or not
        return _record(change, image_ref(row))


def history(catalog: Catalog, ref: str) -> list[StateChange]:
    """Every state change of the image, oldest first."""
    with catalog.session() as s:
        row = _row(s, catalog, ref)
        rows = s.scalars(
            select(StateChangeRow).where(StateChangeRow.image_id == row.id).order_by(StateChangeRow.id)
        ).all()
        return [_record(r, image_ref(row)) for r in rows]


def add_details(catalog: Catalog, change_id: int, details: Mapping[str, Any]) -> None:
    """Add what happened after a recorded change (a retire's deleted files, unpublished targets)."""
    with catalog.session(write=True) as s, s.begin():
        row = s.get(StateChangeRow, change_id)
        if row is None:
            raise NotFound(f"no state change {change_id}")
        row.details = {**row.details, **details}


def require_usable(image: ImageRecord, purpose: str) -> str | None:
    """Raise :class:`ImageNotUsable` when ``image`` may not be ``purpose`` (e.g. "distributed");
    returns a warning for a deprecated image, None for an active one."""
    if image.state in UNUSABLE:
        what = " (their artifacts are deleted)" if image.state == "retired" else ""
        raise ImageNotUsable(
            f"{image.ref} is {image.state}: {image.state} images are not {purpose}{what}",
            hint=f"see: kiln images history {image.ref}"
            + ("" if image.state == "retired" else f"; re-enable it with: kiln images activate {image.ref}"),
        )
    if image.state == "deprecated":
        return f"{image.ref} is deprecated (see: kiln images history {image.ref})"
    return None
