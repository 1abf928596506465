"""Debian version comparison (the dpkg algorithm) on versions parsed once and cached.

python-debian's ``version_compare`` is the reference, but it parses both strings on every call
(~80 µs); a scan compares thousands of (installed, fixed) pairs, so each distinct version string is
parsed once into parts and compared part by part. Tests check this against
``dpkg --compare-versions`` and python-debian.
"""

from __future__ import annotations

import re
from functools import lru_cache

_PART = re.compile(r"(\D*)(\d*)")
Part = tuple[tuple[int, ...], int]
# An exhausted string reads as "" then 0 forever ("1.0" == "1.0-0"; "1.0~" < "1.0").
_END: Part = ((0,), 0)


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _parts(text: str) -> tuple[Part, ...]:
    return tuple(
        ((*(_order(c) for c in letters), 0), int(digits) if digits else 0)
        for letters, digits in _PART.findall(text)
        if letters or digits
    )


@lru_cache(maxsize=65536)
def parse(version: str) -> tuple[int, tuple[Part, ...], tuple[Part, ...]]:
    """(epoch, upstream parts, revision parts); each part is (non-digit order codes + 0, number)."""
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return (int(epoch) if epoch.isdigit() else 0, _parts(upstream), _parts(revision))


def _cmp_parts(a: tuple[Part, ...], b: tuple[Part, ...]) -> int:
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else _END
        y = b[i] if i < len(b) else _END
        if x != y:
            return -1 if x < y else 1
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1, like ``dpkg --compare-versions a lt|eq|gt b``."""
    if a == b:
        return 0
    ea, ua, ra = parse(a)
    eb, ub, rb = parse(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_parts(ua, ub) or _cmp_parts(ra, rb)
