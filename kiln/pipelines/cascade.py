"""The cascade graph: pipeline B depends on pipeline A when B's recipe builds on the image A's recipe
produces. A new image version flows down the graph (each child built once per parent version, in
topological order); a cycle would rebuild forever, so applying one is refused, naming it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from graphlib import CycleError, TopologicalSorter

from kiln.errors import KilnError

# pipeline name -> (image its recipe produces, images its recipe builds on)
Graph = Mapping[str, tuple[str, Iterable[str]]]


class CascadeCycle(KilnError):
    """Pipelines would trigger each other forever (exit code 2: the input is invalid)."""

    exit_code = 2


def dependencies(graph: Graph) -> dict[str, set[str]]:
    """pipeline -> the pipelines producing the images it builds on."""
    producers: dict[str, set[str]] = {}
    for name, (image, _) in graph.items():
        producers.setdefault(image, set()).add(name)
    return {
        name: {p for parent in parents for p in producers.get(parent, ())}
        for name, (_, parents) in graph.items()
    }


def check_acyclic(graph: Graph) -> list[str]:
    """The pipelines in topological order (parents first); CascadeCycle names a cycle."""
    try:
        return list(TopologicalSorter(dependencies(graph)).static_order())
    except CycleError as exc:
        cycle: list[str] = list(exc.args[1])
        images = {name: graph[name][0] for name in cycle}
        path = " builds on ".join(f"{name} ({images[name]})" for name in reversed(cycle))
        raise CascadeCycle(
            f"the pipelines form a cycle through their parent images: {path}",
            hint="a pipeline's recipe cannot build, directly or not, on the image it produces",
        ) from None


def ancestors(graph: Graph) -> dict[str, set[str]]:
    """pipeline -> every pipeline upstream of it (whose new images eventually reach it)."""
    direct = dependencies(graph)
    result: dict[str, set[str]] = {}
    for name in check_acyclic(graph):
        result[name] = set(direct[name]).union(*(result[d] for d in direct[name])) if direct[name] else set()
    return result
