"""Step loops: ``for`` over an inclusive integer range, ``forEach`` over a list or a delimited string.

Bounds may use ``{{ parameters }}`` (resolved before the loop starts) but never chaining; the
``forEach`` list may use chaining. Iteration variables are ``loop.index``/``loop.value`` and, for a
named loop, ``NAME.index``/``NAME.value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    field_validator,
    model_validator,
)

from kiln.toe.variables import EXPRESSION, Resolver, parse_chain, scalar_text, substitute_text

DELIMITERS = (".", ",", ";", ":", "\n", "\t", " ", "-", "_")
MAX_ITERATIONS = 100_000
LOOP_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class LoopError(ValueError):
    """Loop bounds that cannot be iterated."""


Bound = StrictInt | str


class ForRange(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Bound
    end: Bound
    update_by: Bound = Field(alias="updateBy")

    @field_validator("start", "end", "update_by")
    @classmethod
    def _bound(cls, value: Bound) -> Bound:
        if isinstance(value, str):
            for expr in (m.group(1) for m in EXPRESSION.finditer(value)):
                if parse_chain(expr) is not None:
                    raise ValueError("loop bounds do not accept chaining expressions")
            if not EXPRESSION.search(value):
                _integer(value)
        return value

    @model_validator(mode="after")
    def _finite(self) -> ForRange:
        if all(isinstance(v, int) for v in (self.start, self.end, self.update_by)):
            check_range(int(self.start), int(self.end), int(self.update_by))
        return self


class DelimitedList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list: str
    delimiter: str = ","

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if value not in DELIMITERS:
            shown = ", ".join(repr(d) for d in DELIMITERS)
            raise ValueError(f"delimiter must be exactly one of {shown}")
        return value


ForEachItem = StrictInt | float | str
# Tags carry "[" so that error locations leave them out (see kiln.yamlsrc).
ForEach = Annotated[
    Annotated[list[ForEachItem], Tag("forEach[list]")] | Annotated[DelimitedList, Tag("forEach[delimited]")],
    Discriminator(lambda v: "forEach[delimited]" if isinstance(v, dict | DelimitedList) else "forEach[list]"),
]


class LoopSpec(BaseModel):
    """The ``loop:`` mapping of a step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, pattern=LOOP_NAME_PATTERN)
    for_: ForRange | None = Field(default=None, alias="for")
    for_each: ForEach | None = Field(default=None, alias="forEach")

    @model_validator(mode="after")
    def _one_kind(self) -> LoopSpec:
        if (self.for_ is None) == (self.for_each is None):
            raise ValueError("a loop needs exactly one of 'for' or 'forEach'")
        if self.name in ("loop",):
            raise ValueError("'loop' is reserved and cannot name a loop")
        return self


@dataclass(frozen=True)
class Iteration:
    index: int
    value: str


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise LoopError(f"{text!r} is not an integer") from None


def check_range(start: int, end: int, update_by: int) -> None:
    if update_by == 0:
        raise LoopError("updateBy must not be 0 (the loop would never end)")
    if (end - start) * update_by < 0:
        raise LoopError(f"updateBy {update_by} moves away from end {end}: the loop would never end")
    if (end - start) // update_by + 1 > MAX_ITERATIONS:
        raise LoopError(f"the loop would run more than {MAX_ITERATIONS} iterations")


def split_delimited(text: str, delimiter: str) -> list[str]:
    """AWSTOE's delimited list: split on the one delimiter; an empty string gives no items."""
    if text == "":
        return []
    return text.split(delimiter)


def iterations(loop: LoopSpec, resolve: Resolver) -> list[Iteration]:
    """The loop's iterations, with bounds and list items substituted by ``resolve``."""
    if loop.for_ is not None:
        start, end, step = (
            v if isinstance(v, int) else _integer(substitute_text(v, resolve))
            for v in (loop.for_.start, loop.for_.end, loop.for_.update_by)
        )
        check_range(start, end, step)
        values = range(start, end + (1 if step > 0 else -1), step)
        return [Iteration(i, str(v)) for i, v in enumerate(values)]
    assert loop.for_each is not None
    if isinstance(loop.for_each, DelimitedList):
        items = split_delimited(substitute_text(loop.for_each.list, resolve), loop.for_each.delimiter)
    else:
        items = [substitute_text(scalar_text(v), resolve) for v in loop.for_each]
    return [Iteration(i, v) for i, v in enumerate(items)]


def loop_resolver(loop: LoopSpec | None, iteration: Iteration | None) -> Resolver:
    """``loop.index``/``loop.value`` and ``NAME.index``/``NAME.value`` for the current iteration."""

    def resolve(expression: str) -> str | None:
        if loop is None or iteration is None:
            return None
        prefix, _, member = expression.partition(".")
        if prefix != "loop" and prefix != loop.name:
            return None
        if member == "index":
            return str(iteration.index)
        if member == "value":
            return iteration.value
        return None

    return resolve


def loop_summary(loop: LoopSpec) -> dict[str, Any]:
    return loop.model_dump(by_alias=True, exclude_none=True)
