"""One state change with everything it entails, for the CLI, the policy runner and the API alike:
retiring deletes artifacts (:mod:`kiln.lifecycle.retire`); disabling and retiring take the image off
its distribution targets when given an unpublisher (:mod:`kiln.lifecycle.unpublish`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kiln.catalog import Catalog
from kiln.lifecycle.references import References
from kiln.lifecycle.retire import RetireReport, retire
from kiln.lifecycle.states import State, StateChange, add_details, change_state
from kiln.lifecycle.unpublish import Unpublisher
from kiln.store import Store


@dataclass(frozen=True)
class Moved:
    change: StateChange
    retired: RetireReport | None = None
    unpublished: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.change.model_dump(mode="json")
        if self.retired is not None:
            out["retire"] = self.retired.as_dict()
        out["unpublished"] = self.unpublished
        return out


def move(
    store: Store, catalog: Catalog, ref: str, to: State, *, actor: str, reason: str,
    expect: State | None = None, details: Mapping[str, Any] | None = None,
    unpublish: Unpublisher | None = None, now: datetime | None = None, refs: References | None = None,
) -> Moved:  # fmt: skip
    """Change ``ref``'s state to ``to`` (refused unless legal, or unless it is still ``expect``)."""
    if to == "retired":
        report = retire(store, catalog, ref, actor=actor, reason=reason, now=now, expect=expect,
                        details=details, unpublish=unpublish, refs=refs)  # fmt: skip
        assert report.change is not None
        return Moved(report.change, report, report.unpublished)
    change = change_state(
        catalog, ref, to, actor=actor, reason=reason, expect=expect, details=details, now=now
    )
    unpublished: list[dict[str, Any]] = []
    if to == "disabled" and unpublish is not None:
        unpublished = unpublish(catalog, catalog.get_image(change.image))
        add_details(catalog, change.id, {"unpublished": unpublished})
    return Moved(change, None, unpublished)
