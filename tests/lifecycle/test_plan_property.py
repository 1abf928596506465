"""``kiln lifecycle apply --dry-run`` prints exactly what ``--yes`` then does: on generated catalogs
(names, ages, states, parent links, channel pointers) and generated policies, the plan computed for the
dry run equals the plan apply computes and carries out, and the catalog afterwards shows exactly those
changes (states and history rows) and nothing else."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import ImageRow, StateChangeRow
from kiln.lifecycle.plan import apply, plan
from kiln.lifecycle.policy import Exclusions, LifecyclePolicy, LoadedLifecyclePolicy, Rule
from kiln.lifecycle.states import STATES, rank
from kiln.store import Store
from tests.lifecycle.conftest import NOW, point_channel, record

NAMES = ["web", "web-api", "base", "golden"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty migrated catalog, copied for every example (migrating each time would be slow)."""
    home = tmp_path_factory.mktemp("template")
    Catalog.open(f"sqlite:///{home / 'catalog.db'}").close()
    return home / "catalog.db"


@st.composite
def catalogs(draw: st.DrawFn) -> list[dict[str, object]]:
    images: list[dict[str, object]] = []
    for i in range(draw(st.integers(0, 12))):
        images.append({
            "name": draw(st.sampled_from(NAMES)),
            "age": draw(st.integers(0, 400)),
            "state": draw(st.sampled_from(STATES)),
            "parent": draw(st.none() | st.integers(0, i - 1)) if i else None,
            "channel": draw(st.none() | st.sampled_from(["dev", "prod"])),
        })  # fmt: skip
    return images


@st.composite
def thresholds(draw: st.DrawFn) -> dict[str, int | None]:
    days = sorted(draw(st.lists(st.integers(0, 300), min_size=3, max_size=3)))
    chosen = draw(st.lists(st.booleans(), min_size=3, max_size=3).filter(any))
    keys = ["deprecate_after_days", "disable_after_days", "retire_after_days"]
    return {k: d if on else None for k, d, on in zip(keys, days, chosen, strict=True)}


rules = st.builds(
    lambda images, keep, retain, ages: Rule(images=images, keep_newest=keep, retain_at_least=retain, **ages),
    st.lists(st.sampled_from(["*", "web*", "base", "g?lden"]), min_size=1, max_size=2),
    st.integers(0, 3), st.integers(0, 3), thresholds(),
)  # fmt: skip
policies = st.builds(
    lambda rules, names, parents, channel: LoadedLifecyclePolicy(
        path=Path("generated.yaml"), digest="sha256:generated",
        policy=LifecyclePolicy(rules=rules, exclude=Exclusions(names=names, parents_of_usable=parents,
                                                                 in_channel=channel)),
    ),
    st.lists(rules, min_size=1, max_size=2), st.lists(st.sampled_from(["golden", "web-*"]), max_size=1),
    st.booleans(), st.booleans(),
)  # fmt: skip


def _fill(catalog: Catalog, images: list[dict[str, object]]) -> list[str]:
    refs: list[str] = []
    digests: list[str] = []
    for i, spec in enumerate(images):
        name = str(spec["name"])
        version = f"1.0.{i}"
        digest = f"sha256:{i:064x}"
        parent = spec["parent"]
        refs.append(record(
            catalog, name, version, recorded=NOW - timedelta(days=int(str(spec["age"]))), digest=digest,
            parent_digest=digests[int(str(parent))] if parent is not None else None, state=str(spec["state"]),
        ))  # fmt: skip
        digests.append(digest)
        if spec["channel"] is not None:
            point_channel(catalog, refs[-1], str(spec["channel"]))
    return refs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=catalogs(), policy=policies)
def test_dry_run_plan_is_what_apply_does(template: Path, images: list[dict[str, object]],
                                         policy: LoadedLifecyclePolicy) -> None:  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="lifecycle-prop-"))
    try:
        shutil.copy(template, work / "catalog.db")
        store = Store.open_at(work, work / "cache")
        with Catalog.open(store.database_url) as catalog:
            refs = _fill(catalog, images)
            before = {r: catalog.get_image(r).state for r in refs}
            dry = plan(catalog, policy, now=NOW)
            real = plan(catalog, policy, now=NOW)
            assert real == dry
            done = apply(store, catalog, real, actor="property")
            assert [d.error for d in done] == [None] * len(dry.changes)
            assert [d.change for d in done] == dry.changes
            after = {r: catalog.get_image(r).state for r in refs}
            with catalog.session() as s:
                rows = s.execute(
                    select(ImageRow.name, ImageRow.version, ImageRow.build_number, StateChangeRow.from_state,
                           StateChangeRow.to_state, StateChangeRow.actor)
                    .join(ImageRow, ImageRow.id == StateChangeRow.image_id).order_by(StateChangeRow.id)
                ).all()  # fmt: skip
        assert [(f"{n}@{v}/{b}", f, t) for n, v, b, f, t, _ in rows] == [
            (c.image, c.from_state, c.to_state) for c in dry.changes
        ]
        assert {a for *_, a in rows} <= {"property"}
        planned = {c.image: c for c in dry.changes}
        for ref in refs:
            if ref in planned:
                assert (before[ref], after[ref]) == (planned[ref].from_state, planned[ref].to_state)
                assert rank(after[ref]) > rank(before[ref])  # a policy only moves forward
            else:
                assert after[ref] == before[ref]
        excluded = {ref for ref, _ in dry.excluded}
        assert not excluded & set(planned)
    finally:
        shutil.rmtree(work)
