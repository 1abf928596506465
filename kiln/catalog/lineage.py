"""An image's lineage as a graph: its ancestors up to the external root it started from (a Debian
release with its archive date, or an OCI image), and every recorded descendant.

The models are the public contract (CLI ``--json``, the API): ``nodes`` and ``edges`` (parent →
child), each image node with its state and, when out of date, why.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiln.catalog.models import ImageRow
from kiln.catalog.parents import OutdatedIndex
from kiln.catalog.queries import resolve_parent
from kiln.catalog.records import image_ref
from kiln.catalog.schemas import semver_key
from kiln.rootfs.archive import SuiteState

MAX_NODES = 500  # a lineage is a family, not the catalog: descendants beyond this are left out


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
    candidates = s.scalars(
        select(ImageRow).where(
            or_(
                ImageRow.parent_digest == row.digest,
                ImageRow.parent == row.name,
                ImageRow.parent.startswith(f"{row.name}@"),
            )
        )
    ).all()
    found = [
        c for c in candidates if c.id != row.id and (p := resolve_parent(s, c)) is not None and p.id == row.id
    ]
    return sorted(found, key=lambda r: (r.name, semver_key(r.version), r.build_number))


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
    queue, truncated = [row], False
    while queue:
        here = queue.pop(0)
        for child in child_rows(s, here):
            ref = image_ref(child)
            if ref in nodes:
                continue
            if len(nodes) >= MAX_NODES:
                truncated = True
                break
            nodes[ref] = _image_node(child, outdated, False)
            edges.append(LineageEdge(parent=image_ref(here), child=ref))
            queue.append(child)
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
