"""A lifecycle policy's plan over the catalog, and carrying it out exactly.

:func:`make_plan` is a pure function of the policy, a snapshot of the catalog and the time, so
``--dry-run`` prints the very plan that ``--yes`` then carries out (:func:`apply` executes the plan it
is given, change by change, each refused if the image moved meanwhile). A policy only moves images
forward (active → deprecated → disabled → retired); it never re-activates.

Per image name, versions are ordered newest first (recorded time, then version and build). For each
version the first rule matching its name decides: the ``keep_newest`` newest are left alone; the
others reach the furthest state whose age threshold they passed; a move to disabled or retired is
capped at deprecated while fewer than ``retain_at_least`` newer versions stay usable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, cast

from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import ImageRow, PromotionRow
from kiln.catalog.schemas import semver_key
from kiln.errors import KilnError
from kiln.lifecycle.policy import LoadedLifecyclePolicy, Rule
from kiln.lifecycle.states import STATES, State, rank
from kiln.lifecycle.unpublish import Unpublisher
from kiln.store import Store

USABLE = ("active", "deprecated")
THRESHOLDS: tuple[tuple[State, str], ...] = (
    ("deprecated", "deprecate_after_days"),
    ("disabled", "disable_after_days"),
    ("retired", "retire_after_days"),
)


@dataclass(frozen=True)
class Candidate:
    """What planning needs of one image version (a snapshot of its catalog row)."""

    id: int
    name: str
    version: str
    build: int
    digest: str
    parent_digest: str | None
    state: State
    recorded: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}/{self.build}"


@dataclass(frozen=True)
class PlannedChange:
    image: str
    from_state: State
    to_state: State
    rule: str  # which rule and threshold matched, e.g. "rules[0] disable_after_days: 90 (age 120.0 days)"

    def as_dict(self) -> dict[str, str]:
        return {"image": self.image, "from": self.from_state, "to": self.to_state, "rule": self.rule}


@dataclass(frozen=True)
class Plan:
    policy: str  # path
    digest: str
    now: datetime
    changes: list[PlannedChange] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (image, why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "digest": self.digest, "now": self.now.isoformat(),
            "changes": [c.as_dict() for c in self.changes],
            "excluded": [{"image": i, "reason": r} for i, r in self.excluded],
        }  # fmt: skip


LabelSource = Callable[[Catalog], Mapping[int, Mapping[str, str]]]


def catalog_labels(catalog: Catalog) -> Mapping[int, Mapping[str, str]]:
    """Image labels by image id, from the catalog's label table (``kiln images label``)."""
    from sqlalchemy import select

    from kiln.catalog.labels import labels_of
    from kiln.catalog.models import ImageRow

    with catalog.session() as s:
        return labels_of(s, set(s.scalars(select(ImageRow.id)).all()))


def snapshot(catalog: Catalog) -> list[Candidate]:
    with catalog.session() as s:
        rows = s.execute(
            select(
                ImageRow.id,
                ImageRow.name,
                ImageRow.version,
                ImageRow.build_number,
                ImageRow.digest,
                ImageRow.parent_digest,
                ImageRow.state,
                ImageRow.recorded,
            )
        ).all()
    return [Candidate(r[0], r[1], r[2], r[3], r[4], r[5], cast(State, r[6]), r[7]) for r in rows]


def channel_pointers(catalog: Catalog) -> dict[int, list[str]]:
    """Image id → the channels currently pointing at it (a channel's newest allowed move)."""
    current: dict[tuple[str, str], int] = {}
    with catalog.session() as s:
        for name, channel, image_id in s.execute(
            select(PromotionRow.image_name, PromotionRow.channel, PromotionRow.image_id)
            .where(PromotionRow.allowed)
            .order_by(PromotionRow.id)
        ):
            current[(name, channel)] = image_id
    out: dict[int, list[str]] = defaultdict(list)
    for (_name, channel), image_id in sorted(current.items()):
        out[image_id].append(channel)
    return dict(out)


def concerns(catalog: Catalog, ref: str) -> list[str]:
    """Why disabling or retiring ``ref`` by hand may hurt: channels pointing at it, usable images built
    on it (what a policy's exclusions would have protected)."""
    image = catalog.get_image(ref)
    found = []
    images = snapshot(catalog)
    mine = next(c for c in images if c.ref == image.ref)
    channels = channel_pointers(catalog).get(mine.id, [])
    if channels:
        found.append(f"{image.ref} is the current version of channel {', '.join(channels)}")
    children = [c.ref for c in images if c.parent_digest == image.digest and c.state in USABLE]
    if children:
        found.append(f"{image.ref} is the parent of {', '.join(sorted(children))}")
    return found


def _exclusion(
    c: Candidate, policy: LoadedLifecyclePolicy, parents: set[str],
    channels: Mapping[int, list[str]], labels: Mapping[int, Mapping[str, str]],
) -> str | None:  # fmt: skip
    ex = policy.policy.exclude
    if any(fnmatchcase(c.name, p) for p in ex.names):
        return "name matches exclude.names"
    mine = labels.get(c.id, {})
    hit = next((f"{k}={v}" for k, v in sorted(ex.labels.items()) if mine.get(k) == v), None)
    if hit is not None:
        return f"label {hit} (exclude.labels)"
    if ex.parents_of_usable and c.digest in parents:
        return "parent of an active or deprecated image (exclude.parents_of_usable)"
    if ex.in_channel and c.id in channels:
        return f"in channel {', '.join(channels[c.id])} (exclude.in_channel)"
    return None


def _newest_first(c: Candidate) -> tuple[float, tuple[int, ...], int]:
    return (-c.recorded.timestamp(), tuple(-n for n in semver_key(c.version)), -c.build)


def _target(rule: Rule, age_days: float) -> tuple[State, str]:
    """The furthest state whose threshold ``age_days`` reached, and which threshold that was."""
    reached: tuple[State, str] = ("active", "")
    for state, attr in THRESHOLDS:
        days = getattr(rule, attr)
        if days is not None and age_days >= days:
            reached = (state, f"{attr}: {days:g}")
    return reached


def make_plan(
    policy: LoadedLifecyclePolicy,
    images: list[Candidate],
    *,
    now: datetime,
    channels: Mapping[int, list[str]] | None = None,
    labels: Mapping[int, Mapping[str, str]] | None = None,
) -> Plan:
    """The changes ``policy`` makes to ``images`` at ``now`` (a pure function: same inputs, same plan)."""
    plan = Plan(str(policy.path), policy.digest, now)
    parents = {c.parent_digest for c in images if c.state in USABLE and c.parent_digest}
    by_name: dict[str, list[Candidate]] = defaultdict(list)
    for c in images:
        by_name[c.name].append(c)
    for name in sorted(by_name):
        found = policy.policy.rule_for(name)
        if found is None:
            continue
        index, rule = found
        versions = sorted(by_name[name], key=_newest_first)
        usable = 0
        for position, c in enumerate(versions):
            if c.state == "retired":
                continue
            final: State = c.state
            why = _exclusion(c, policy, parents, channels or {}, labels or {})
            if why is not None:
                plan.excluded.append((c.ref, why))
            elif position >= rule.keep_newest:
                age = (now - c.recorded).total_seconds() / 86400
                target, threshold = _target(rule, age)
                note = ""
                if rank(target) > rank("deprecated") and c.state in USABLE and usable < rule.retain_at_least:
                    target = "deprecated"
                    note = f", capped at deprecated by retain_at_least: {rule.retain_at_least}"
                if rank(target) > rank(c.state):
                    final = target
                    plan.changes.append(PlannedChange(
                        c.ref, c.state, target, f"rules[{index}] {threshold} (age {age:.1f} days){note}"
                    ))  # fmt: skip
            if final in USABLE:
                usable += 1
    return plan


def plan(
    catalog: Catalog, policy: LoadedLifecyclePolicy, *, now: datetime | None = None,
    labels: LabelSource = catalog_labels,
) -> Plan:  # fmt: skip
    """The plan of ``policy`` over the catalog as it is now."""
    return make_plan(
        policy, snapshot(catalog), now=now or datetime.now(UTC),
        channels=channel_pointers(catalog), labels=labels(catalog),
    )  # fmt: skip


@dataclass(frozen=True)
class Applied:
    change: PlannedChange
    error: str | None = None
    freed: int = 0


def apply(
    store: Store, catalog: Catalog, plan: Plan, *, actor: str, unpublish: Unpublisher | None = None
) -> list[Applied]:
    """Carry out exactly ``plan``: each change is made from the state it was planned from, or refused
    (recorded in the result, the others still made). Retiring deletes artifacts (``kiln images retire``)."""
    from kiln.lifecycle.move import move
    from kiln.lifecycle.references import live_references

    # computed once (each retire then forgets its image), not once per retire: O(n), not O(n²)
    refs = live_references(store, catalog) if any(c.to_state == "retired" for c in plan.changes) else None
    done: list[Applied] = []
    for change in plan.changes:
        reason = f"lifecycle policy {plan.policy}: {change.rule}"
        details = {"policy": plan.policy, "policy_digest": plan.digest, "rule": change.rule}
        try:
            moved = move(
                store, catalog, change.image, change.to_state, actor=actor, reason=reason,
                expect=change.from_state, details=details, unpublish=unpublish, refs=refs,
            )  # fmt: skip
            done.append(Applied(change, freed=moved.retired.freed if moved.retired else 0))
        except KilnError as exc:
            done.append(Applied(change, error=exc.message))
    return done


__all__ = ["STATES", "Applied", "Candidate", "Plan", "PlannedChange", "apply", "make_plan", "plan"]
