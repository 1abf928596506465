"""YAML parsing with bounds: every input problem becomes a ValidationFailed with file:line:column.

A hostile or broken file must not crash, hang or exhaust memory. ruamel.yaml composes nodes
recursively (deep nesting ended in RecursionError after seconds) and parses ~20,000 nodes a second
here, and aliases are shared references that a naive walk expands without limit ("billion laughs":
nine lines that expand to 10^9 strings). So, before any value is used:

- a NUL character in text (``"\\0"`` in a double-quoted string) is refused: no path, argument or
  environment variable can hold one;
- nesting deeper than :data:`MAX_DEPTH` levels is refused while composing (ruamel's ``max_depth``);
- more than :data:`MAX_NODES` nodes in the file are refused while composing (bounded parse time);
- the tree with aliases expanded may hold at most :data:`MAX_EXPANDED_NODES` values,
  :data:`MAX_EXPANDED_CHARS` characters of text and :data:`MAX_DEPTH` levels; an alias that
  contains itself is refused. The error names the innermost collection that exceeds the limit.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from kiln.errors import Issue, ValidationFailed

MAX_DEPTH = 64
MAX_NODES = 10_000
MAX_EXPANDED_NODES = 100_000
MAX_EXPANDED_CHARS = 4 << 20


class _BoundedComposer(Composer):
    """Counts the nodes it composes and stops at MAX_NODES (depth is ruamel's own ``max_depth``)."""

    nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            mark = self.parser.peek_event().start_mark
            raise ComposerError(None, None, f"more than {MAX_NODES} values in one file", mark)
        return super().compose_node(parent, index)


class _MarkedConstructor(RoundTripConstructor):
    """Scalar conversion errors (a 5,000-digit integer, month 13) get the node's position."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, TypeError, OverflowError) as exc:
            problem = str(exc).split(";")[0]  # Python's int-size error adds a hint about sys
            raise ConstructorError(None, None, f"cannot read value: {problem}", node.start_mark) from None


def _issue(name: str, line: int | None, column: int | None, message: str) -> ValidationFailed:
    return ValidationFailed([Issue(name, line, column, "", message)])


def _problem(exc: MarkedYAMLError) -> str:
    problem = " ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
    # ruamel quotes both values of a duplicate key; an error never shows the document's content.
    return re.sub(r' with value ".*?" \(original value: ".*?"\)', "", problem, flags=re.S)


def load_bounded(name: str, text: str) -> Any:
    """``text`` loaded with ruamel's round-trip loader (positions kept) within the bounds above."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.max_depth = MAX_DEPTH
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _MarkedConstructor
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        if "maximum depth" in str(exc.problem):
            raise _issue(name, line, column, f"nested more than {MAX_DEPTH} levels deep") from None
        raise _issue(name, line, column, f"invalid YAML: {_problem(exc)}") from None
    except ReaderError as exc:
        pos = int(exc.position)
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else 0
        raise _issue(
            name, line, column, f"invalid YAML: control character U+{code:04X} is not allowed"
        ) from None
    except (YAMLError, RecursionError, ValueError, TypeError) as exc:  # unmarked ruamel errors
        raise _issue(
            name, None, None, f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


class _Expansion:
    """Sizes of the alias-expanded tree, computed once per shared node (no expansion happens)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sizes: dict[int, tuple[int, int, int]] = {}  # id → (values, characters, height)
        self.open: set[int] = set()

    def where(self, node: Any) -> tuple[int | None, int | None]:
        if isinstance(node, CommentedBase) and getattr(node.lc, "line", None) is not None:
            return node.lc.line + 1, node.lc.col + 1
        return None, None

    def fail(self, node: Any, message: str) -> ValidationFailed:
        return _issue(self.name, *self.where(node), message)

    def nul(self, node: Any, index: Any, *, key: bool = False) -> ValidationFailed:
        lc: Any = getattr(node, "lc", None)
        try:
            line, column = (
                lc.key(index) if key else lc.value(index) if isinstance(node, dict) else lc.item(index)
            )
            position: tuple[int | None, int | None] = (line + 1, column + 1)
        except (AttributeError, KeyError, IndexError, TypeError):
            position = self.where(node)
        return _issue(
            self.name, *position, "text contains a NUL character (\\0), which no file or command accepts"
        )

    def size(self, node: Any, depth: int = 1) -> tuple[int, int, int]:
        if isinstance(node, dict):
            children: list[Any] = [*node.keys(), *node.values()]
            for key, value in node.items():
                if isinstance(key, str) and "\0" in key:
                    raise self.nul(node, key, key=True)
                if isinstance(value, str) and "\0" in value:
                    raise self.nul(node, key)
        elif isinstance(node, list):
            children = list(node)
            for index, value in enumerate(node):
                if isinstance(value, str) and "\0" in value:
                    raise self.nul(node, index)
        else:
            return 1, len(node) if isinstance(node, str) else 0, 0
        key = id(node)
        if key in self.open:
            raise self.fail(node, "an alias refers to a collection that contains it (recursive alias)")
        known = self.sizes.get(key)
        if known is None:
            if depth > MAX_DEPTH:
                raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep (with aliases expanded)")
            self.open.add(key)
            values, chars, height = 1, 0, 0
            for child in children:
                v, c, h = self.size(child, depth + 1)
                values, chars, height = values + v, chars + c, max(height, h + 1)
            self.open.discard(key)
            known = self.sizes[key] = (values, chars, height)
        if depth + known[2] > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep (with aliases expanded)")
        return known

    def culprit(self, root: Any, over: Any) -> Any:
        """The innermost collection over the limit (``over(size)``) whose children are all within it."""
        node = root
        while True:
            items = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            inner = next((c for c in items if isinstance(c, dict | list) and over(self.size(c))), None)
            if inner is None:
                return node
            node = inner


def check_expansion(name: str, raw: Any) -> None:
    """Refuse a tree whose aliases expand beyond the limits (or into themselves), with a position."""
    expansion = _Expansion(name)
    if isinstance(raw, str) and "\0" in raw:  # the whole file is one string
        raise _issue(name, 1, 1, "text contains a NUL character (\\0), which no file or command accepts")
    values, chars, _ = expansion.size(raw)
    if values > MAX_EXPANDED_NODES:
        node = expansion.culprit(raw, lambda s: s[0] > MAX_EXPANDED_NODES)
        raise expansion.fail(
            node, f"aliases expand to {values} values, more than {MAX_EXPANDED_NODES} (an alias bomb?)"
        )
    if chars > MAX_EXPANDED_CHARS:
        node = expansion.culprit(raw, lambda s: s[1] > MAX_EXPANDED_CHARS)
        raise expansion.fail(
            node,
            f"aliases expand to {chars} characters of text, more than {MAX_EXPANDED_CHARS} (an alias bomb?)",
        )
