"""An image's lineage as a graph: its ancestors up to the external root it started from (a Debian
release with its archive date, or an OCI image), and every recorded descendant.

The models are the public contract (CLI ``--json``, the API): ``nodes`` and ``edges`` (parent →
child), each image node with its state and, when out of date, why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiln.catalog.models import ImageRow
from kiln.catalog.parents import OutdatedIndex
from kiln.catalog.queries import choose_parent, parent_name, resolve_parent
from kiln.catalog.records import image_ref
from kiln.catalog.schemas import semver_key
from kiln.rootfs.archive import SuiteState

MAX_NODES = 500  # a lineage is a family, not the catalog: descendants beyond this are left out
CHUNK = 500  # names or digests per IN (...) list


class LineageNode(BaseModel):
    """An image version, or the root an ancestry starts from (``kind`` "root")."""

    model_config = ConfigDict(frozen=True)

    id: str  # NAME@x.y.z/n, or the root's reference (debian:bookworm, oci-layout:..., docker://...)
    kind: Literal["image", "root"]
    name: str
    version: str | None = None  # x.y.z/n
    digest: str | None = None
    state: str | None = None
    parent: str | None = None  # the parent as the recipe named it (kiln:org-base@1.x)
    outdated: str | None = None  # why the image is out of date (None: it is not)
    focus: bool = False  # the image asked about
    release: str | None = None  # a distribution root: its suite, e.g. bookworm
    archive_date: datetime | None = None  # a distribution root: its archive date (SOURCE_DATE_EPOCH)
    mirror: str | None = None
    snapshot: str | None = None  # the archive snapshot, when the lock names one
    archive: list[SuiteState] = []  # a distribution root: its suites' Release files (Date, sha256)


class LineageEdge(BaseModel):
    model_config = ConfigDict(frozen=True)

    parent: str  # node ids
    child: str


class LineageGraph(BaseModel):
    model_config = ConfigDict(frozen=True)

    focus: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = False


def _image_node(row: ImageRow, outdated: OutdatedIndex, focus: bool) -> LineageNode:
    found = outdated.of(row.name, row.version, row.build_number)
    return LineageNode(
        id=image_ref(row), kind="image", name=row.name, version=f"{row.version}/{row.build_number}",
        digest=row.digest, state=row.state, parent=row.parent,
        outdated=found.reason if found else None, focus=focus,
    )  # fmt: skip


def root_node(row: ImageRow) -> LineageNode:
    """The external parent of the topmost recorded ancestor, with what its lock records."""
    parent = dict((row.lock or {}).get("parent") or {})
    epoch = parent.get("source_date_epoch")
    release = parent.get("suite") or (
        row.parent.partition(":")[2] if row.parent.startswith(("debian:", "ubuntu:")) else None
    )
    mirror = parent.get("mirror")
    sources = parent.get("sources") or []
    if mirror is None and sources:
        words = str(sources[0]).split()
        mirror = words[1] if len(words) > 2 else None
    return LineageNode(
        id=row.parent, kind="root", name=row.parent, digest=row.parent_digest if not release else None,
        release=release, archive_date=datetime.fromtimestamp(int(epoch), UTC) if epoch else None,
        mirror=mirror, snapshot=parent.get("snapshot"),
        archive=[SuiteState.model_validate(s) for s in parent.get("archive") or []],
    )  # fmt: skip


def child_rows(s: Session, row: ImageRow) -> list[ImageRow]:
    """Recorded images built directly on ``row``."""
    return children_of(s, [row]).get(row.id, [])


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(items)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


def children_of(s: Session, level: list[ImageRow]) -> dict[int, list[ImageRow]]:
    """The children of every row in ``level`` by parent id, sorted: one query for the candidates (by
    parent digest or name) and one for the versions of the names they refer to, whatever the size of
    the level (per chunk of names), instead of a query per candidate."""
    ids = {r.id for r in level}
    candidates: dict[int, ImageRow] = {}
    for digests in _chunks({r.digest for r in level}):
        for c in s.scalars(select(ImageRow).where(ImageRow.parent_digest.in_(digests))):
            candidates[c.id] = c
    for names in _chunks({r.name for r in level}):
        named = [ImageRow.parent.in_(names), *(ImageRow.parent.startswith(f"{n}@") for n in names)]
        for c in s.scalars(select(ImageRow).where(or_(*named))):
            candidates[c.id] = c
    wanted = {n for c in candidates.values() if (n := parent_name(c)) is not None}
    versions: dict[str, list[ImageRow]] = {}
    for names in _chunks(wanted):
        for r in s.scalars(select(ImageRow).where(ImageRow.name.in_(names))):
            versions.setdefault(r.name, []).append(r)
    found: dict[int, list[ImageRow]] = {}
    for c in candidates.values():
        name = parent_name(c)
        parent = choose_parent(c, versions.get(name, [])) if name is not None else None
        if parent is not None and parent.id in ids and parent.id != c.id:
            found.setdefault(parent.id, []).append(c)
    for rows in found.values():
        rows.sort(key=lambda r: (r.name, semver_key(r.version), r.build_number))
    return found


def lineage_graph(s: Session, row: ImageRow) -> LineageGraph:
    """Ancestors (to the root) and descendants (breadth first) of ``row``."""
    outdated = OutdatedIndex(s)
    nodes = {image_ref(row): _image_node(row, outdated, True)}
    edges: list[LineageEdge] = []
    current = row
    while True:
        parent = resolve_parent(s, current)
        if parent is None or image_ref(parent) in nodes:
            root = root_node(current)
            nodes.setdefault(root.id, root)
            edges.append(LineageEdge(parent=root.id, child=image_ref(current)))
            break
        nodes[image_ref(parent)] = _image_node(parent, outdated, False)
        edges.append(LineageEdge(parent=image_ref(parent), child=image_ref(current)))
        current = parent
    level, truncated = [row], False
    while level:  # breadth first, one level (a few queries) at a time
        children, following = children_of(s, level), []
        for here in level:
            for child in children.get(here.id, []):
                ref = image_ref(child)
                if ref in nodes:
                    continue
                if len(nodes) >= MAX_NODES:
                    truncated = True
                    break
                nodes[ref] = _image_node(child, outdated, False)
                edges.append(LineageEdge(parent=image_ref(here), child=ref))
                following.append(child)
        level = following
    return LineageGraph(focus=image_ref(row), nodes=list(nodes.values()), edges=edges, truncated=truncated)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_label(node: LineageNode) -> str:
    if node.kind == "root":
        date = f" (archive {node.archive_date:%Y-%m-%d})" if node.archive_date else ""
        suites = ", ".join(
            f"{s.suite} {datetime.fromtimestamp(s.date, UTC):%Y-%m-%d %H:%M} {s.sha256[:12]}"
            for s in node.archive
        )
        return f"{node.name}{date}" + (f" [{suites}]" if suites else "")
    text = node.id
    if node.state and node.state != "active":
        text += f" [{node.state}]"
    if node.outdated:
        text += " [outdated]"
    return text


def to_dot(graph: LineageGraph) -> str:
    """Graphviz ``dot`` text: parents above children, the asked-about image in bold."""
    lines = ["digraph lineage {", "  rankdir=TB;", "  node [shape=box, fontname=monospace];"]
    for node in graph.nodes:
        attrs = [f"label={_dot_quote(node_label(node))}"]
        if node.kind == "root":
            attrs.append("shape=ellipse")
        if node.focus:
            attrs.append("style=bold")
        if node.outdated:
            attrs.append("color=orange")
        lines.append(f"  {_dot_quote(node.id)} [{', '.join(attrs)}];")
    lines += [f"  {_dot_quote(e.parent)} -> {_dot_quote(e.child)};" for e in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
