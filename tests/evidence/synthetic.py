"""SYNTHETIC vulnerability data, written for Kiln's tests (not real advisories).

The vulnerability fixtures (tests/fixtures/vuln; sources and licences in its MANIFEST.txt) are real
tracker/OSV excerpts, but none of their bookworm entries names a package in a minbase image, and they lack no-dsa, undetermined and epoch
cases. These entries use the Debian Security Tracker JSON shape and name packages *really installed*
in the test root at their *real* versions, with ids in the reserved CVE-1999-9xxxx range so no one
mistakes them for real CVEs — except CVE-2011-3374 (apt), which really is open/unimportant in every
Debian release.
"""

from __future__ import annotations

from typing import Any


def release(status: str, fixed: str | None = None, urgency: str = "medium", **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"status": status, "repositories": {}, "urgency": urgency, **extra}
    if fixed is not None:
        info["fixed_version"] = fixed
    return info


def tracker_for(installed: dict[str, str]) -> dict[str, Any]:
    """A tracker document built around the test root's real source versions ``installed``."""
    glibc, zlib, bash = installed["glibc"], installed["zlib"], installed["bash"]
    assert zlib.startswith("1:"), "the zlib epoch case needs zlib's real epoch"
    return {
        "glibc": {
            # later fix → fixable, high
            "CVE-1999-90001": {
                "description": "SYNTHETIC glibc issue",
                "releases": {
                    "bookworm": release("resolved", glibc + "+kiln1", "high"),
                    "trixie": release("resolved", "2.41-1", "high"),
                },
            },
            # fixed long ago → not vulnerable
            "CVE-1999-90002": {"releases": {"bookworm": release("resolved", "2.36-9+deb12u1", "high")}},
            # never affected
            "CVE-1999-90003": {"releases": {"bookworm": release("resolved", "0", "unimportant")}},
            # non-CVE ids are skipped
            "TEMP-0000000-KILN01": {"releases": {"bookworm": release("open", None, "high")}},
        },
        "apt": {
            "CVE-2011-3374": {
                "description": "It was found that apt-key in apt, all versions, do not correctly "
                "validate gpg keys with the master keyring, leading to a potential man-in-the-middle "
                "attack.",
                "releases": {"bookworm": release("open", None, "unimportant")},
            },
        },
        "coreutils": {
            "CVE-1999-90004": {
                "releases": {
                    "bookworm": release("open", None, "low**", nodsa="Minor issue", nodsa_reason="postponed")
                }
            },
        },
        "tar": {
            "CVE-1999-90005": {"releases": {"bookworm": release("undetermined", None, "not yet assigned")}}
        },
        "zlib": {
            # epochs: the fix "1.2.14-1" (no epoch) is older than 1:1.2.13… → not vulnerable
            "CVE-1999-90006": {"releases": {"bookworm": release("resolved", "1.2.14-1", "high")}},
            # same epoch, later revision → fixable
            "CVE-1999-90007": {"releases": {"bookworm": release("resolved", zlib + "+deb12u1", "medium")}},
        },
        "bash": {
            # installed binary is a binNMU (…+bNN); matching uses the source version
            "CVE-1999-90008": {"releases": {"bookworm": release("resolved", bash, "high")}},
        },
        "sope": {
            "CVE-1999-90009": {"releases": {"bookworm": release("open", None, "high")}}
        },  # not installed
    }
