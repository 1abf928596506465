"""``kiln images lineage REF`` and ``kiln images list --outdated``: images built on images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from kiln.catalog import Catalog
from kiln.catalog.lineage import LineageGraph, LineageNode, node_label, to_dot
from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json, show


def _open(data_dir: Path | None) -> Catalog:
    return Catalog.open(open_store(data_dir).database_url)


def _styled(node: LineageNode) -> str:
    text = escape(node_label(node))
    if node.kind == "root":
        extra = [
            f"from {node.mirror}" if node.mirror else "",
            f"snapshot {node.snapshot}" if node.snapshot else "",
        ]
        return f"[cyan]{text}[/]" + "".join(f" [dim]{escape(e)}[/]" for e in extra if e)
    if node.focus:
        text = f"[bold]{text}[/]"
    if node.digest:
        text += f" [dim]{node.digest[:19]}[/]"
    if node.parent and node.parent.startswith("kiln:"):
        text += f" [dim]({escape(node.parent)})[/]"
    if node.outdated:
        text += f"\n[yellow]outdated: {escape(node.outdated)}[/]"
    return text


def render_tree(graph: LineageGraph) -> Tree:
    """The graph as a tree from its root down (every node has one parent)."""
    by_id = {n.id: n for n in graph.nodes}
    children: dict[str, list[str]] = {}
    for edge in graph.edges:
        children.setdefault(edge.parent, []).append(edge.child)
    has_parent = {e.child for e in graph.edges}
    roots = [n for n in graph.nodes if n.id not in has_parent]
    tree = Tree("[bold]lineage[/]", guide_style="dim")
    stack = [(tree.add(_styled(r)), r.id) for r in roots]
    while stack:
        branch, node_id = stack.pop()
        for child in children.get(node_id, []):
            stack.append((branch.add(_styled(by_id[child])), child))
    return tree


def images_lineage(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION[/BUILD]]", help="Image reference.")],
    output: Annotated[
        Literal["tree", "dot"], typer.Option("--format", help="tree (terminal) or dot (Graphviz).")
    ] = "tree",
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show an image's ancestors (down to its Debian or OCI root) and its descendants."""
    catalog = _open(data_dir)
    try:
        graph = catalog.lineage_graph(catalog.get_image(ref).ref)
    finally:
        catalog.close()
    if json_out:
        print_json(graph.model_dump(mode="json"))
    elif output == "dot":
        typer.echo(to_dot(graph), nl=False)
    else:
        console.print(render_tree(graph))
        if graph.truncated:
            console.print("[dim](more descendants not shown)[/]")


def list_outdated(data_dir: Path | None, name: str | None, *, json_out: bool) -> None:
    """``kiln images list --outdated``: images whose parent constraint selects a newer version."""
    catalog = _open(data_dir)
    try:
        found = [o for o in catalog.outdated() if name is None or o.image.partition("@")[0] == name]
    finally:
        catalog.close()
    if json_out:
        print_json([o.model_dump(mode="json") for o in found])
        return
    if not found:
        console.print("no outdated images: every child is built on the newest parent its constraint accepts")
        return
    table = Table("IMAGE", "PARENT", "BUILT FROM", "REASON", box=None)
    for o in found:
        table.add_row(escape(o.image), escape(o.parent), escape(o.built_from or "-"), escape(o.reason))
    show(table)
