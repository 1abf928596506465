"""Image parents in the catalog: constraint resolution, refusals naming what exists, out-of-date
children (direct and through an ancestor) and the lineage graph, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, update

from kiln.catalog import Catalog
from kiln.catalog.fleet import FleetQuery, query_catalog
from kiln.catalog.labels import set_labels
from kiln.catalog.lineage import to_dot
from kiln.catalog.models import ImageRow
from kiln.catalog.parents import ParentUnavailable, select_parent
from kiln.catalog.promotions import record as record_promotion
from kiln.recipes.parentref import KilnImageSource, parse_parent

Record = Callable[..., str]


def digest() -> str:
    return "sha256:" + uuid.uuid4().hex * 2


def set_state(catalog: Catalog, ref: str, state: str) -> None:
    name, _, rest = ref.partition("@")
    version, _, build = rest.partition("/")
    with catalog.session(write=True) as s, s.begin():
        s.execute(update(ImageRow).where(ImageRow.name == name, ImageRow.version == version,
                                         ImageRow.build_number == int(build)).values(state=state))  # fmt: skip


def pick(catalog: Catalog, parent: str) -> str:
    source = parse_parent(parent)
    assert isinstance(source, KilnImageSource)
    with catalog.session() as s:
        return select_parent(s, source).ref


@pytest.fixture
def bases(catalog: Catalog, record_image: Record) -> dict[str, str]:
    """base 1.0.0/1, 1.1.0/1, 1.1.0/2, 2.0.0/1 and their digests."""
    digests = {}
    for version in ("1.0.0", "1.1.0", "1.1.0", "2.0.0"):
        value = digest()
        record_image("base", version, digest=value)
        digests[catalog.list_images("base")[-1].ref] = value
    return digests


def test_constraints_resolve_to_the_newest_matching_version(catalog: Catalog, bases: dict[str, str]) -> None:
    table = {
        "kiln:base@latest": "base@2.0.0/1",
        "kiln:base": "base@2.0.0/1",
        "kiln:base@1.x": "base@1.1.0/2",
        "kiln:base@1.0.x": "base@1.0.0/1",
        "kiln:base@1.1.0": "base@1.1.0/2",
        "kiln:base@1.1.0/1": "base@1.1.0/1",
        f"kiln:base@{bases['base@1.0.0/1']}": "base@1.0.0/1",
    }
    assert {parent: pick(catalog, parent) for parent in table} == table


def test_a_channel_resolves_to_its_image(catalog: Catalog, bases: dict[str, str]) -> None:
    with pytest.raises(ParentUnavailable, match="channel prod of base points at no image"):
        pick(catalog, "kiln:base@prod")
    record_promotion(catalog, "base@1.0.0/1", channel="prod", action="promote", allowed=True, decision={},
                     envelope=None, who="tests", at=datetime.now(UTC))  # fmt: skip
    assert pick(catalog, "kiln:base@prod") == "base@1.0.0/1"


def test_unknown_image_and_unmatched_versions_say_what_exists(
    catalog: Catalog, bases: dict[str, str]
) -> None:
    with pytest.raises(ParentUnavailable, match="no image nope in the catalog") as unknown:
        pick(catalog, "kiln:nope@1.x")
    assert unknown.value.hint == "recorded images: base"
    with pytest.raises(ParentUnavailable, match=r"no version of base matches 3\.x") as unmatched:
        pick(catalog, "kiln:base@3.x")
    assert unmatched.value.hint == "recorded versions of base: 1.0.0/1, 1.1.0/1, 1.1.0/2, 2.0.0/1"


def test_disabled_and_retired_parents_are_refused_deprecated_ones_used(
    catalog: Catalog, bases: dict[str, str]
) -> None:
    set_state(catalog, "base@1.1.0/2", "disabled")
    assert pick(catalog, "kiln:base@1.x") == "base@1.1.0/1"  # the newest usable match
    with pytest.raises(
        ParentUnavailable, match=r"base@1.1.0/2 is disabled and cannot be used as a parent"
    ) as err:
        pick(catalog, "kiln:base@1.1.0/2")
    assert "1.1.0/2 (disabled)" in (err.value.hint or "")
    set_state(catalog, "base@1.1.0/1", "retired")
    with pytest.raises(ParentUnavailable, match=r"base@1.1.0/2 is disabled .*other 1 matching"):
        pick(catalog, "kiln:base@1.1.x")
    set_state(catalog, "base@1.0.0/1", "deprecated")
    assert pick(catalog, "kiln:base@1.x") == "base@1.0.0/1"


def test_outdated_children_direct_and_through_their_parent(catalog: Catalog, record_image: Record) -> None:
    base1, org1, web1, pinned = digest(), digest(), digest(), digest()
    record_image("debian-base", "1.0.0", digest=base1)
    record_image("org-base", "1.0.0", digest=org1, parent="kiln:debian-base@1.x", parent_digest=base1)
    record_image("web", "1.0.0", digest=web1, parent="kiln:org-base@1.x", parent_digest=org1)
    record_image("pinned", "1.0.0", digest=pinned, parent=f"kiln:debian-base@{base1}", parent_digest=base1)
    assert catalog.outdated() == []
    record_image("debian-base", "1.0.1", digest=digest())  # a newer parent, not yet active
    set_state(catalog, "debian-base@1.0.1/1", "deprecated")
    assert catalog.outdated() == []
    set_state(catalog, "debian-base@1.0.1/1", "active")
    found = {o.image: o for o in catalog.outdated()}
    assert sorted(found) == ["org-base@1.0.0/1", "web@1.0.0/1"]  # pinned by digest: never outdated
    assert found["org-base@1.0.0/1"].reason == "parent kiln:debian-base@1.x has 1.0.1/1, built from 1.0.0/1"
    assert found["org-base@1.0.0/1"].newer == "debian-base@1.0.1/1"
    assert found["web@1.0.0/1"].via == "org-base@1.0.0/1"
    assert found["web@1.0.0/1"].reason.startswith(
        "parent org-base@1.0.0/1 is outdated: parent kiln:debian-base"
    )
    assert catalog.outdated_reason("web") == found["web@1.0.0/1"]
    record_image("debian-base", "2.0.0", digest=digest())  # outside 1.x: changes nothing
    assert sorted(o.image for o in catalog.outdated()) == ["org-base@1.0.0/1", "web@1.0.0/1"]


def test_lineage_graph_from_the_root_to_the_descendants(catalog: Catalog, record_image: Record) -> None:
    base, org = digest(), digest()
    lock = {"parent": {"image": "debian:bookworm", "suite": "bookworm", "mirror": "http://deb.debian.org/debian",
                       "source_date_epoch": 1_767_225_600, "sources": []}}  # fmt: skip
    record_image("debian-base", "1.0.0", digest=base, lock=lock, parent_digest="sha256:" + "0" * 64)
    record_image("org-base", "1.0.0", digest=org, parent="kiln:debian-base@1.x", parent_digest=base)
    record_image("web", "1.0.0", parent="kiln:org-base@1.x", parent_digest=org)
    record_image("api", "1.0.0", parent="kiln:org-base@1.0.0", parent_digest=org)
    graph = catalog.lineage_graph("org-base")
    assert graph.focus == "org-base@1.0.0/1"
    assert {(e.parent, e.child) for e in graph.edges} == {
        ("debian:bookworm", "debian-base@1.0.0/1"), ("debian-base@1.0.0/1", "org-base@1.0.0/1"),
        ("org-base@1.0.0/1", "api@1.0.0/1"), ("org-base@1.0.0/1", "web@1.0.0/1"),
    }  # fmt: skip
    root = next(n for n in graph.nodes if n.kind == "root")
    assert (root.release, root.mirror, root.archive_date) == (
        "bookworm",
        "http://deb.debian.org/debian",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert [n.id for n in graph.nodes if n.focus] == ["org-base@1.0.0/1"]
    assert next(n for n in graph.nodes if n.id == "web@1.0.0/1").parent == "kiln:org-base@1.x"
    dot = to_dot(graph)
    assert '"debian:bookworm" -> "debian-base@1.0.0/1";' in dot
    assert '"org-base@1.0.0/1" [label="org-base@1.0.0/1", style=bold];' in dot
    # the older lineage API follows kiln: parents too
    assert [e.ref for e in catalog.lineage("web")] == [
        "org-base@1.0.0/1",
        "debian-base@1.0.0/1",
        "debian:bookworm",
    ]
    assert [c.ref for c in catalog.children("org-base")] == ["api@1.0.0/1", "web@1.0.0/1"]


def test_a_child_of_a_channel_is_outdated_when_the_channel_moves(
    catalog: Catalog, record_image: Record
) -> None:
    one, two = digest(), digest()
    record_image("base", "1.0.0", digest=one)
    record_image("base", "1.1.0", digest=two)
    promote = {"action": "promote", "allowed": True, "decision": {}, "envelope": None, "who": "tests"}
    record_promotion(catalog, "base@1.1.0/1", channel="prod", at=datetime.now(UTC), **promote)  # type: ignore[arg-type]
    record_image("app", "1.0.0", parent="kiln:base@prod", parent_digest=two)
    assert catalog.outdated() == []
    record_promotion(catalog, "base@1.0.0/1", channel="prod", at=datetime.now(UTC), **promote)  # type: ignore[arg-type]
    [found] = catalog.outdated()  # a rollback counts: the channel no longer names what app was built on
    assert found.reason == "channel prod of base now points at 1.0.0/1, built from 1.1.0/1"


def test_outdated_is_a_fleet_filter_that_combines(catalog: Catalog, record_image: Record) -> None:
    base1, org1 = digest(), digest()
    record_image("debian-base", "1.0.0", digest=base1)
    record_image("org-base", "1.0.0", digest=org1, parent="kiln:debian-base@1.x", parent_digest=base1)
    record_image("web", "1.0.0", digest=digest(), parent="kiln:org-base@1.x", parent_digest=org1)
    record_image("api", "1.0.0", digest=digest(), parent="kiln:org-base@1.x", parent_digest=org1)
    set_labels(catalog, "web@1.0.0/1", {"team": "payments"})

    def refs(**filters: object) -> list[str]:
        return [m.image.ref for m in query_catalog(catalog, FleetQuery.model_validate(filters))]

    assert refs(outdated=True) == []
    record_image("debian-base", "1.0.1", digest=digest())
    assert refs(outdated=True) == ["api@1.0.0/1", "org-base@1.0.0/1", "web@1.0.0/1"]
    assert refs(outdated=True, labels={"team": "payments"}) == ["web@1.0.0/1"]
    assert refs(outdated=True, parent="org-base") == ["api@1.0.0/1", "web@1.0.0/1"]
    assert refs(outdated=True, name="org-base", state="active") == ["org-base@1.0.0/1"]
    set_state(catalog, "api@1.0.0/1", "deprecated")
    assert refs(outdated=True, state="deprecated") == ["api@1.0.0/1"]
    assert refs(outdated=True, parent="debian:bookworm") == []


def test_lineage_graph_loads_descendants_by_level_not_per_node(
    catalog: Catalog, record_image: Record
) -> None:
    base = digest()
    record_image("base", "1.0.0", digest=base)
    for m in range(4):
        mid = digest()
        record_image(f"mid-{m}", "1.0.0", digest=mid, parent="kiln:base@1.x", parent_digest=base)
        for leaf in range(5):  # both reference forms: an exact one and the digest of a kiln: parent
            parent = f"mid-{m}@1.0.0/1" if leaf % 2 else f"kiln:mid-{m}@1.x"
            record_image(f"leaf-{m}-{leaf}", "1.0.0", parent=parent, parent_digest=mid)
    record_image(
        "mid-0", "1.0.1", digest=digest(), parent="kiln:base@1.x", parent_digest=digest()
    )  # not base's
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(catalog.engine, "before_cursor_execute", count)
    graph = catalog.lineage_graph("base")
    event.remove(catalog.engine, "before_cursor_execute", count)
    edges = {(e.parent, e.child) for e in graph.edges}
    assert len(graph.nodes) == 1 + 1 + 4 + 20 and len(edges) == 25
    assert ("mid-2@1.0.0/1", "leaf-2-3@1.0.0/1") in edges and ("mid-2@1.0.0/1", "leaf-2-4@1.0.0/1") in edges
    assert not any(c.startswith("mid-0@1.0.1") for _, c in edges)
    # a node-per-query walk needs more than 25; by level it is a few per level (3 levels + the last)
    assert len(statements) <= 20, len(statements)
