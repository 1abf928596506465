"""``{{ expression }}`` substitution: parameters, constants, loop variables and chaining.

An expression is looked up by a resolver; an expression nobody knows stays literal (AWSTOE leaves
``{{ loop.value }}`` outside a loop as written, and ``${...}`` CloudFormation text is never touched).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kiln.errors import KilnError

EXPRESSION = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME = re.compile(r"^[A-Za-z0-9_-]{3,128}$")
CHAIN = re.compile(
    r"^(?P<phase>[^.\s\[\]]+)\.(?P<step>[^.\s\[\]]+)\.(?P<kind>inputs|outputs)"
    r"(?:\[(?P<index>\d+)\])?\.(?P<field>[^.\s\[\]]+)$"
)
SSM_PREFIX = "aws:ssm:"

Resolver = Callable[[str], str | None]
"""Returns the replacement text of an expression, or None to leave it literal."""


class SubstitutionError(KilnError):
    """An expression names something that cannot be resolved here."""


@dataclass(frozen=True)
class ChainRef:
    """A parsed ``{{ phase.step.inputs[i].field }}`` reference."""

    phase: str
    step: str
    kind: str  # "inputs" or "outputs"
    index: int | None
    field: str

    def __str__(self) -> str:
        index = f"[{self.index}]" if self.index is not None else ""
        return f"{self.phase}.{self.step}.{self.kind}{index}.{self.field}"


def parse_chain(expression: str) -> ChainRef | None:
    match = CHAIN.match(expression.strip())
    if match is None:
        return None
    index = match["index"]
    return ChainRef(
        match["phase"], match["step"], match["kind"], int(index) if index else None, match["field"]
    )


def expressions(text: str) -> list[str]:
    """Every ``{{ ... }}`` expression in ``text``, trimmed."""
    return [m.group(1) for m in EXPRESSION.finditer(text)]


def substitute_text(text: str, resolve: Resolver) -> str:
    def replace(match: re.Match[str]) -> str:
        value = resolve(match.group(1))
        return match.group(0) if value is None else value

    return EXPRESSION.sub(replace, text)


def substitute(value: Any, resolve: Resolver) -> Any:
    """Replace expressions in every string of a nested structure (keys are left alone)."""
    if isinstance(value, str):
        return substitute_text(value, resolve)
    if isinstance(value, list):
        return [substitute(v, resolve) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, resolve) for k, v in value.items()}
    return value


def strings_in(value: Any) -> list[str]:
    """All strings in a nested structure (for static checks)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    return []


def variables_resolver(variables: Mapping[str, str]) -> Resolver:
    """Parameters and constants by exact (case-sensitive) name; ``aws:ssm:`` is an error."""

    def resolve(expression: str) -> str | None:
        if expression in variables:
            return variables[expression]
        if expression.startswith(SSM_PREFIX):
            raise SubstitutionError(
                f"{{{{ {expression} }}}}: Systems Manager parameters are not available outside AWS",
            )
        return None

    return resolve


def chain_resolver(chain: Mapping[str, Any]) -> Resolver:
    """Chaining against recorded step state: ``chain[phase][step] = {"inputs": ..., "outputs": {...}}``."""

    def resolve(expression: str) -> str | None:
        ref = parse_chain(expression)
        if ref is None:
            return None
        step = chain.get(ref.phase, {}).get(ref.step)
        if step is None:
            raise SubstitutionError(f"{{{{ {ref} }}}}: step {ref.phase}.{ref.step} has not run")
        data = step.get(ref.kind)
        if ref.index is not None:
            if not isinstance(data, list) or ref.index >= len(data):
                raise SubstitutionError(f"{{{{ {ref} }}}}: {ref.kind} has no entry {ref.index}")
            data = data[ref.index]
        elif isinstance(data, list) and ref.kind == "inputs":
            data = data[0] if data else {}
        if not isinstance(data, dict) or ref.field not in data:
            raise SubstitutionError(f"{{{{ {ref} }}}}: no {ref.kind[:-1]} named {ref.field!r}")
        return scalar_text(data[ref.field])

    return resolve


def scalar_text(value: Any) -> str:
    """How a YAML scalar reads when substituted into text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(scalar_text(v) for v in value)
    return str(value)


def chained(*resolvers: Resolver) -> Resolver:
    """First resolver that knows the expression wins."""

    def resolve(expression: str) -> str | None:
        for r in resolvers:
            value = r(expression)
            if value is not None:
                return value
        return None

    return resolve
