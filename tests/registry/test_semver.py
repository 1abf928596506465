"""Version patterns with Image Builder's rules: a table of patterns and what each selects."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kiln.errors import UsageError
from kiln.registry.semver import choose, parse_pattern, parse_version


@dataclass(frozen=True)
class V:
    version: str
    state: str = "active"


PUBLISHED = [
    V("0.9.0"),
    V("1.0.0"),
    V("1.2.0"),
    V("1.2.3"),
    V("1.2.10"),
    V("1.10.0"),
    V("2.0.0", "deprecated"),
]

# pattern -> the version it selects from PUBLISHED (None: nothing matches)
SELECTS = [
    ("1.2.3", "1.2.3"),  # exact
    ("1.2.x", "1.2.10"),  # numeric, not lexical: 10 > 3
    ("1.x", "1.10.0"),
    ("1.x.x", "1.10.0"),
    ("0.x", "0.9.0"),
    ("latest", "1.10.0"),  # the highest *active* version: 2.0.0 is deprecated
    ("x", "1.10.0"),
    ("x.x.x", "1.10.0"),
    ("2.x", "2.0.0"),  # only deprecated versions match: the highest of them (the build warns)
    ("2.0.0", "2.0.0"),  # pinned exactly: deprecated versions stay usable
    ("1.3.x", None),
    ("3.x", None),
    ("1.2.4", None),
]


@pytest.mark.parametrize(("pattern", "expected"), SELECTS)
def test_pattern_selects(pattern: str, expected: str | None) -> None:
    chosen = choose(PUBLISHED, parse_pattern(pattern))
    assert (chosen.version if chosen else None) == expected


INVALID = [
    ("1.x.2", "trailing positions"),
    ("x.1", "trailing positions"),
    ("x.1.x", "trailing positions"),
    ("1", "invalid version pattern"),
    ("1.2", "invalid version pattern"),
    ("1.2.3.4", "invalid version pattern"),
    ("01.2.3", "invalid version pattern"),
    ("1.2.3-rc.1", "invalid version pattern"),
    ("1.*", "invalid version pattern"),
    ("", "invalid version pattern"),
    ("newest", "invalid version pattern"),
]


@pytest.mark.parametrize(("pattern", "message"), INVALID)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_pattern(pattern)


@pytest.mark.parametrize("text", ["1.2", "1.2.3-rc.1", "1.2.3+build", "v1.2.3", "1.02.3", "1.x.0"])
def test_versions_are_major_minor_patch_only(text: str) -> None:
    with pytest.raises(UsageError, match=r"not a semantic version MAJOR.MINOR.PATCH"):
        parse_version(text)


def test_prerelease_is_named_in_the_error() -> None:
    with pytest.raises(UsageError, match="pre-release and build suffixes are not supported"):
        parse_version("1.2.3-rc.1")
