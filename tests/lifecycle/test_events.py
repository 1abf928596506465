"""A state change is an ``image.state-changed`` event, recorded in the transaction of the change:
a refused change records none."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import EventRow
from kiln.events.emit import to_event
from kiln.events.model import IMAGE_STATE_CHANGED, Event
from kiln.lifecycle.states import IllegalTransition, change_state
from tests.lifecycle.conftest import record


def state_events(catalog: Catalog) -> list[Event]:
    with catalog.session() as s:
        rows = s.scalars(select(EventRow).where(EventRow.type == IMAGE_STATE_CHANGED).order_by(EventRow.id))
        return [to_event(r) for r in rows.all()]


def test_each_state_change_is_an_event_and_a_refused_one_is_none(any_catalog: Catalog) -> None:
    ref = record(any_catalog, "web")
    change_state(any_catalog, ref, "deprecated", actor="ops", reason="superseded by 1.1")
    change_state(any_catalog, ref, "disabled", actor="ops", reason="CVE-2026-1")
    with pytest.raises(IllegalTransition):
        change_state(any_catalog, ref, "disabled", actor="ops", reason="again")
    with pytest.raises(IllegalTransition):  # planned from another state: nothing changes, no event
        change_state(any_catalog, ref, "retired", actor="ops", reason="x", expect="active")
    found = state_events(any_catalog)
    assert [(e.data["previous"], e.data["state"], e.data["reason"]) for e in found] == [
        ("active", "deprecated", "superseded by 1.1"),
        ("deprecated", "disabled", "CVE-2026-1"),
    ]
    assert {e.subject for e in found} == {f"images/{ref}"} and found[0].data["image"] == ref
