"""Debian version comparison (python-debian) against the oracle, ``dpkg --compare-versions``."""

from __future__ import annotations

import subprocess

from debian.debian_support import version_compare
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.evidence.debversion import compare

_alnum = "0123456789abczAZ"
upstream = st.builds(
    lambda head, rest: head + rest,
    st.sampled_from("0123456789"),
    st.text(alphabet=_alnum + ".+~-", max_size=8),
)
revision = st.text(alphabet=_alnum + ".+~", min_size=1, max_size=6)
versions = st.builds(
    lambda epoch, up, rev: (f"{epoch}:" if epoch is not None else "") + up + (f"-{rev}" if rev else ""),
    st.one_of(st.none(), st.integers(0, 3)),
    upstream,
    st.one_of(st.none(), revision),
).filter(lambda v: not v.endswith("-"))  # dpkg: "revision number is empty"


def dpkg_lt(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False).returncode == 0


def dpkg_eq(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "eq", b], check=False).returncode == 0


@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_version_compare_matches_dpkg(a: str, b: str) -> None:
    expected = -1 if dpkg_lt(a, b) else (0 if dpkg_eq(a, b) else 1)
    assert compare(a, b) == expected
    library = version_compare(a, b)  # python-debian, the reference library
    assert (library > 0) - (library < 0) == expected


def test_known_orderings() -> None:
    for lower, higher in [
        ("1.0~rc1-1", "1.0-1"),
        ("1:1.0-1", "2:0.1-1"),
        ("2.36-9+deb12u13", "2.36-9+deb12u14"),
        ("5.2.15-2", "5.2.15-2+b13"),
        ("1.2.14-1", "1:1.2.13.dfsg-1"),
        ("1.0", "1.0.0"),
        ("1.0~", "1.0"),
        ("1.0-0", "1.0-0.1"),
        ("1.0a", "1.0b"),
        ("0-0~", "0"),
        ("1.0-0.1", "1.0-.1"),
    ]:
        assert compare(lower, higher) == -1 and compare(higher, lower) == 1
        assert version_compare(lower, higher) < 0
        assert dpkg_lt(lower, higher)
    assert compare("1.0", "1.0-0") == 0 and compare("0:1.0", "1.0") == 0 and compare("1.01", "1.1") == 0
