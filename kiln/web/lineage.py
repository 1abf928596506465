"""The lineage graph's layout: a column of ancestors down to the image, then a row of children."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiln.catalog import ImageRecord, LineageEntry

BOX_W, BOX_H, GAP_Y, GAP_X, MARGIN = 220, 34, 26, 16, 8
MAX_CHILDREN = 6


@dataclass(frozen=True)
class Node:
    label: str
    url: str | None
    x: float
    y: float
    current: bool = False


@dataclass
class Graph:
    width: float
    height: float
    box_w: int = BOX_W
    box_h: int = BOX_H
    nodes: list[Node] = field(default_factory=list)
    edges: list[dict[str, float]] = field(default_factory=list)


def layout(
    image: ImageRecord, lineage: list[LineageEntry], children: list[ImageRecord], url: object
) -> Graph:
    shown = children[:MAX_CHILDREN]
    row = max(1, len(shown))
    width = MARGIN * 2 + row * BOX_W + (row - 1) * GAP_X
    column_x = (width - BOX_W) / 2
    chain = [(e.ref, url(e.image) if e.image else None) for e in reversed(lineage)]  # type: ignore[operator]
    chain.append((image.ref, None))
    levels = len(chain) + (1 if shown else 0)
    graph = Graph(width=width, height=MARGIN * 2 + levels * BOX_H + (levels - 1) * GAP_Y)
    for level, (label, link) in enumerate(chain):
        y = MARGIN + level * (BOX_H + GAP_Y)
        graph.nodes.append(Node(label, link, column_x, y, current=level == len(chain) - 1))
        if level:
            graph.edges.append(
                {"x1": column_x + BOX_W / 2, "y1": y - GAP_Y, "x2": column_x + BOX_W / 2, "y2": y}
            )
    if shown:
        y = MARGIN + len(chain) * (BOX_H + GAP_Y)
        for index, child in enumerate(shown):
            x = MARGIN + index * (BOX_W + GAP_X)
            more = (
                f" (+{len(children) - MAX_CHILDREN})"
                if index == MAX_CHILDREN - 1 and len(children) > MAX_CHILDREN
                else ""
            )
            graph.nodes.append(Node(child.ref + more, url(child), x, y))  # type: ignore[operator]
            graph.edges.append({"x1": column_x + BOX_W / 2, "y1": y - GAP_Y, "x2": x + BOX_W / 2, "y2": y})
    return graph
