"""YAML loading that remembers where every value came from, so errors can name file:line:column.

Uses ruamel.yaml's round-trip loader (it keeps line/column marks on mappings and sequences) and
converts the result to plain Python containers plus a :class:`Locator` that maps a pydantic-style
location tuple (``("components", 2, "parameters")``) back to a position in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from kiln.errors import Issue, ValidationFailed, display_path
from kiln.inputfile import MAX_INPUT_BYTES, read_input
from kiln.yamlbounds import check_expansion, load_bounded

Loc = Sequence[int | str]


@dataclass
class Locator:
    """Finds the (line, column), 1-based, of a value addressed by a location path."""

    root: Any

    def position(self, loc: Loc) -> tuple[int | None, int | None]:
        node = self.root
        best: tuple[int | None, int | None] = (1, 1)
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line, col = node.lc.key(part)
                best = (line + 1, col + 1)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, col = node.lc.item(part)
                best = (line + 1, col + 1)
                node = node[part]
            else:
                break
        return best


@dataclass
class SourceDocument:
    """A parsed YAML file: plain data, its text, and where each value sits."""

    path: Path
    text: str
    data: Any
    locator: Locator

    @property
    def name(self) -> str:
        return display_path(self.path)

    def issue(self, loc: Loc, message: str, field: str | None = None) -> Issue:
        line, col = self.locator.position(loc)
        return Issue(self.name, line, col, field if field is not None else dotted(loc), message)

    def issues_from(self, error: ValidationError, prefix: Loc = ()) -> list[Issue]:
        """Pydantic errors as issues with positions (``prefix`` is where the validated value sits)."""
        issues = []
        for err in error.errors():
            loc = [*prefix, *_real_loc(self.data, [*prefix], [p for p in err["loc"] if not _is_union_tag(p)])]
            issues.append(self.issue(loc, _message(err)))
        return issues


def _real_loc(data: Any, prefix: list[int | str], loc: list[int | str]) -> list[int | str]:
    """Drop the parts pydantic inserts for discriminated unions (the tag value, e.g. ``qcow2``)."""
    node = data
    for part in prefix:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
                continue
            if i + 1 < len(loc) and loc[i + 1] in node:
                continue  # a synthetic tag: the next part is a real key here
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
            continue
        out.append(part)
        node = None
    return out


def _is_union_tag(part: int | str) -> bool:
    # pydantic inserts the union member's name into locations (e.g. "function-after[...]").
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(err: Any) -> str:
    """A pydantic error in the words a user of the file understands."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "type")).strip("'")
        return f"unknown {field} {ctx.get('tag')!r} (expected one of: {ctx.get('expected_tags')})"
    msg: str = err["msg"]
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def dotted(loc: Loc) -> str:
    """``("phases", 0, "steps")`` → ``phases[0].steps``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def to_plain(node: Any) -> Any:
    """``node`` (as loaded) as plain dicts and lists; aliases are expanded, so check_expansion first."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    return node


def parse_yaml(path: Path, text: str | None = None) -> SourceDocument:
    """Parse ``path`` (or ``text``) within the limits of :mod:`kiln.yamlbounds`; syntax errors,
    unreadable files and oversized or too deeply nested documents become a ValidationFailed with the
    position."""
    name = display_path(path)
    if text is None:
        text = read_input(path)
    elif len(text) > MAX_INPUT_BYTES:
        raise ValidationFailed(
            [Issue(name, None, None, "", f"document is larger than {MAX_INPUT_BYTES} bytes")]
        )
    raw = load_bounded(name, text)
    check_expansion(name, raw)
    return SourceDocument(path, text, to_plain(raw), Locator(raw))
