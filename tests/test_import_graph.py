"""Every kiln module imports, and kiln's modules import each other without cycles.

The graph is read with ``ast`` from module-level imports (including those in ``if``/``try`` blocks and
class bodies, which run at import time), leaving out imports inside functions (deferred on purpose) and
``if TYPE_CHECKING:`` blocks (never run). ``from kiln.a import b`` is an edge to ``kiln.a.b`` when that
is a module, else to ``kiln.a``.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

KILN = Path(__file__).resolve().parents[1] / "kiln"
# Alembic's env.py runs a migration when imported; it is loaded by Alembic, never by kiln.
NOT_IMPORTABLE = ("kiln.catalog.migrations.env", "kiln.catalog.migrations.versions.")


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(KILN.rglob("*.py")):
        parts = path.relative_to(KILN.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from module_level_imports(node.body)
            yield from module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from module_level_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from module_level_imports(node.body)


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in module_level_imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_walk_finds_a_cycle() -> None:
    """The check itself can fail: a two-module cycle and a longer one are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_nested_imports_are_read(tmp_path: Path) -> None:
    code = (
        "from typing import TYPE_CHECKING\nimport kiln.errors\nif TYPE_CHECKING:\n    import kiln.store\n"
        "try:\n    from kiln import monitor\nexcept ImportError:\n    pass\n"
        "def f():\n    import kiln.settings\n"
    )
    names = set()
    for node in module_level_imports(ast.parse(code).body):
        names |= {a.name for a in node.names} | (
            {node.module or ""} if isinstance(node, ast.ImportFrom) else set()
        )
    assert names == {"TYPE_CHECKING", "typing", "kiln.errors", "kiln", "monitor"}


def test_no_import_cycles_among_kiln_modules() -> None:
    graph = import_graph()
    assert "kiln.toe.step_exec" in graph["kiln.toe.runner"]  # the graph sees real edges
    assert cycles(graph) == []


@pytest.mark.parametrize("name", [n for n in module_files() if not n.startswith(NOT_IMPORTABLE)])
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)
