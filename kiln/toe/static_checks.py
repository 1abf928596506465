"""Checks across steps: chaining references must name an earlier step of the same stage; a plain
``{{ Name }}`` must be a parameter or constant of the document."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from typing import Any

from kiln.toe.variables import SSM_PREFIX, expressions, parse_chain, strings_in
from kiln.yamlsrc import Loc

BUILD_STAGE = ("build", "validate")


def _stage(phase: str) -> str:
    return "build" if phase in BUILD_STAGE else ("test" if phase == "test" else phase)


def check_references(phases_raw: list[Any]) -> Iterator[tuple[Loc, str, str]]:
    """(location, field path, message) for each chaining or SSM reference that cannot resolve."""
    order: dict[str, int] = {}
    steps: dict[str, list[str]] = {}
    for phase_raw in phases_raw:
        if isinstance(phase_raw, dict) and isinstance(phase_raw.get("name"), str):
            order.setdefault(phase_raw["name"], len(order))
            raw_steps: list[Any] = phase_raw["steps"] if isinstance(phase_raw.get("steps"), list) else []
            steps[phase_raw["name"]] = [str(s.get("name")) for s in raw_steps if isinstance(s, dict)]
    for i, phase_raw in enumerate(phases_raw):
        if not isinstance(phase_raw, dict) or not isinstance(phase_raw.get("steps"), list):
            continue
        phase = str(phase_raw.get("name"))
        for j, step_raw in enumerate(phase_raw["steps"]):
            if not isinstance(step_raw, dict):
                continue
            name = step_raw.get("name")
            raw_loop = step_raw.get("loop")
            loop: dict[str, Any] = raw_loop if isinstance(raw_loop, dict) else {}
            sources = [("inputs", step_raw.get("inputs")), ("loop", loop.get("forEach"))]
            for key, value in sources:
                loc: Loc = ("phases", i, "steps", j, key)
                field = f"phases[{phase}].steps[{name}].{key}"
                for text in strings_in(value):
                    for expr in expressions(text):
                        message = _problem(expr, phase, j, order, steps)
                        if message:
                            yield loc, field, message


PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def check_undeclared(phases_raw: list[Any], declared: Collection[str]) -> Iterator[tuple[Loc, str, str]]:
    """(location, field path, message) for each ``{{ Name }}`` that is neither a parameter nor a
    constant (loop variables and chaining have dots; they are checked elsewhere). AWSTOE leaves such
    text as written, which is nearly always a typo: a warning, with the closest declared name."""
    for i, phase_raw in enumerate(phases_raw):
        if not isinstance(phase_raw, dict) or not isinstance(phase_raw.get("steps"), list):
            continue
        for j, step_raw in enumerate(phase_raw["steps"]):
            if not isinstance(step_raw, dict):
                continue
            field = f"phases[{phase_raw.get('name')}].steps[{step_raw.get('name')}].inputs"
            seen: set[str] = set()
            for where, text in _strings_at(step_raw.get("inputs"), ()):
                for expr in expressions(text):
                    if expr in seen or expr in declared or not PLAIN_NAME.fullmatch(expr):
                        continue
                    seen.add(expr)
                    close = difflib.get_close_matches(expr, list(declared), n=1, cutoff=0.6)
                    close += [d for d in declared if d.lower() == expr.lower()]
                    guess = f"; did you mean {{{{ {close[-1]} }}}}?" if close else ""
                    yield (
                        ("phases", i, "steps", j, "inputs", *where),
                        field,
                        f"{{{{ {expr} }}}} is not a parameter or constant of this document: it stays as "
                        f"written{guess} (an error with --strict)",
                    )


def _strings_at(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a nested structure with its path (so a warning points at its own line)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _strings_at(item, (*path, k))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings_at(item, (*path, key))


def _problem(
    expr: str, phase: str, index: int, order: dict[str, int], steps: dict[str, list[str]]
) -> str | None:
    if expr.startswith(SSM_PREFIX):
        return (
            f"{{{{ {expr} }}}}: Systems Manager parameters are not available outside AWS; "
            "declare a parameter and pass the value with --parameters"
        )
    ref = parse_chain(expr)
    if ref is None:
        return None
    if ref.phase not in order:
        return f"{{{{ {expr} }}}}: the document has no phase {ref.phase!r}"
    if ref.step not in steps[ref.phase]:
        return f"{{{{ {expr} }}}}: phase {ref.phase!r} has no step {ref.step!r}"
    if _stage(ref.phase) != _stage(phase) and "test" in (_stage(ref.phase), _stage(phase)):
        return (
            f"{{{{ {expr} }}}}: chaining between the build stage (build, validate) and the test stage is "
            "not possible: they run on different instances"
        )
    if phase not in order:
        return None
    earlier = order[ref.phase] < order[phase] or (ref.phase == phase and steps[phase].index(ref.step) < index)
    if not earlier:
        return (
            f"{{{{ {expr} }}}}: step {ref.phase}.{ref.step} runs later; chaining can only use earlier steps"
        )
    return None
