"""Versions and version patterns of the registry, with EC2 Image Builder's rules.

A version is ``MAJOR.MINOR.PATCH`` (non-negative integers, no leading zeros; Image Builder has no
pre-release or build suffixes, so neither has Kiln). A pattern selects versions: an exact version
(``1.2.3``), a wildcard with ``x`` in trailing positions only (``1.x``, ``1.x.x``, ``1.2.x``, ``x``),
or ``latest``. ``1.x.2`` and ``x.1`` are refused, as Image Builder refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from kiln.errors import UsageError

_NUMBER = re.compile(r"^(0|[1-9]\d{0,8})$")
Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    """``1.2.3`` → ``(1, 2, 3)``; anything else is a UsageError saying what a version looks like."""
    parts = str(text).strip().split(".")
    if len(parts) != 3 or not all(_NUMBER.match(p) for p in parts):
        suffix = " (pre-release and build suffixes are not supported)" if "-" in text or "+" in text else ""
        raise UsageError(
            f"'{text}' is not a semantic version MAJOR.MINOR.PATCH{suffix}", hint="e.g. 1.0.0 or 2.13.4"
        )
    return int(parts[0]), int(parts[1]), int(parts[2])


def format_version(version: Version) -> str:
    return ".".join(str(p) for p in version)


@dataclass(frozen=True)
class Pattern:
    """The fixed leading parts of a version pattern: ``1.2.x`` → ``(1, 2)``; ``latest`` → ``()``."""

    text: str
    fixed: tuple[int, ...]

    @property
    def exact(self) -> bool:
        return len(self.fixed) == 3

    def matches(self, version: Version) -> bool:
        return version[: len(self.fixed)] == self.fixed


def parse_pattern(text: str) -> Pattern:
    """Parse ``1.2.3``, ``1.2.x``, ``1.x``, ``1.x.x``, ``x`` or ``latest`` (UsageError otherwise)."""
    value = str(text).strip()
    if value == "latest":
        return Pattern(value, ())
    parts = value.split(".")
    fixed: list[int] = []
    for position, part in enumerate(parts):
        if part == "x":
            if not all(p == "x" for p in parts[position:]):
                raise UsageError(
                    f"invalid version pattern '{value}': 'x' may stand only in trailing positions",
                    hint="write 1.x, 1.2.x, 1.2.3 or latest (as in Image Builder)",
                )
            break
        if not _NUMBER.match(part):
            raise UsageError(
                f"invalid version pattern '{value}'",
                hint="write MAJOR.MINOR.PATCH (1.2.3), a trailing wildcard (1.x, 1.2.x) or latest",
            )
        fixed.append(int(part))
    if len(parts) > 3 or (len(fixed) == len(parts) and len(parts) != 3):
        raise UsageError(
            f"invalid version pattern '{value}'",
            hint="write MAJOR.MINOR.PATCH (1.2.3), a trailing wildcard (1.x, 1.2.x) or latest",
        )
    return Pattern(value, tuple(fixed))


def split_ref(ref: str) -> tuple[str, str]:
    """``NAME@PATTERN`` → ``(NAME, PATTERN)``; a bare ``NAME`` means ``NAME@latest``."""
    name, at, pattern = ref.strip().partition("@")
    return name, (pattern if at else "latest")


class Versioned(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def state(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def choose(items: Sequence[V], pattern: Pattern) -> V | None:
    """The version ``pattern`` selects from ``items``: an exact version as given (deprecated or not);
    for a wildcard or ``latest``, the highest active match, else (all deprecated) the highest match."""
    matches = [i for i in items if pattern.matches(parse_version(i.version))]
    pool = matches if pattern.exact else ([i for i in matches if i.state == "active"] or matches)
    return max(pool, key=lambda i: parse_version(i.version)) if pool else None
