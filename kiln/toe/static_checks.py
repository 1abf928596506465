"""Checks across steps: chaining references must name an earlier step of the same stage."""

from __future__ import annotations

from collections.abc import Iterator
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
