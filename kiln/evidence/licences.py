"""Debian machine-readable copyright files → SPDX licence expressions.

Debian short names (``GPL-2+``, ``BSD-3-clause``, ``Expat``…) are mapped to SPDX identifiers; anything
without an SPDX equivalent becomes a ``LicenseRef-`` so the expression stays valid SPDX.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from license_expression import ExpressionError, get_spdx_licensing

NOASSERTION = "NOASSERTION"
# copyright-format 1.0 and the DEP-5 drafts it came from (python-debian's known Format URLs).
_MACHINE_READABLE = re.compile(r"copyright-format/1\.0|/deps/dep5|/dep5\.mdwn", re.IGNORECASE)

# Debian short name (lower case) → SPDX id. "+" suffixes are handled generically below.
_DEBIAN_TO_SPDX = {
    "apache-2": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "artistic-1": "Artistic-1.0",
    "artistic-2": "Artistic-2.0",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "bzip": "bzip2-1.0.6",
    "cc0": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "expat": "MIT",
    "mit": "MIT",
    "mit/x11": "X11",
    "x11": "X11",
    "isc": "ISC",
    "zlib": "Zlib",
    "fsfullr": "FSFULLR",
    "fsfap": "FSFAP",
    "fsful": "FSFUL",
    "unicode": "Unicode-DFS-2016",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "openssl": "OpenSSL",
    "curl": "curl",
    "psf-2": "PSF-2.0",
    "python": "Python-2.0",
    "gfdl-1.2": "GFDL-1.2-only",
    "gfdl-1.3": "GFDL-1.3-only",
    "gfdl-niv-1.3+": "GFDL-1.3-no-invariants-or-later",
    "ofl-1.1": "OFL-1.1",
    "bsl-1.0": "BSL-1.0",
    "wtfpl": "WTFPL",
    "beerware": "Beerware",
    "latex2e": "Latex2e",
    "0bsd": "0BSD",
}
# GNU families: Debian writes GPL-2, GPL-2+, GPLv2+, LGPL-2.1+ …
_GNU = re.compile(r"^(a?gpl|lgpl|gfdl)[-v]?(\d(?:\.\d)?)(\+?)$")


@lru_cache(maxsize=1)
def _licensing():  # type: ignore[no-untyped-def]
    return get_spdx_licensing()


def _ref(name: str) -> str:
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.\-]+", "-", name).strip("-") or "unknown")


def _atom(name: str) -> str:
    """One Debian licence short name → one SPDX id or LicenseRef."""
    key = name.strip().lower()
    if key in _DEBIAN_TO_SPDX:
        return _DEBIAN_TO_SPDX[key]
    m = _GNU.match(key)
    if m:
        family, version, plus = m.groups()
        if "." not in version and family in ("gpl", "agpl", "gfdl"):
            version += ".0"
        elif "." not in version and family == "lgpl" and version in ("2", "3"):
            version = {"2": "2.0", "3": "3.0"}[version]
        return f"{family.upper()}-{version}-{'or-later' if plus else 'only'}"
    return _ref(name.strip())


@lru_cache(maxsize=4096)
def debian_to_spdx(expression: str) -> str:
    """A Debian ``License:`` synopsis (``GPL-1+ or Artistic``) as an SPDX expression."""
    text = expression.strip().rstrip(",")
    if not text:
        return NOASSERTION
    if re.search(r"\bwith\b", text, re.I):  # "GPL-3+ with Bison exception": keep it whole
        return _ref(text)
    parts = re.split(r"\s*,?\s+\b(or|and)\b\s+|\s*,\s*", text, flags=re.I)
    out: list[str] = []
    for i, part in enumerate(parts):
        if part is None or not part.strip():
            continue
        if i % 2 == 1:
            out.append(part.upper())
        else:
            if out and out[-1] not in ("AND", "OR"):
                out.append("AND")
            out.append(_atom(part))
    result = " ".join(out)
    try:
        _licensing().parse(result, validate=False, strict=True)
    except ExpressionError:
        return _ref(text)
    return result


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs as python-debian's Deb822 reads them (blank or whitespace-only lines separate
    paragraphs, ``#`` lines are comments, indented lines continue a field), about 10x faster."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line.startswith("#"):
            continue
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    if fields:
        yield fields


def copyright_licences(root: Path, package: str) -> list[str]:
    """Distinct licences (SPDX expressions) from the package's machine-readable copyright file.

    Returns [] when the file is absent, not machine-readable or unparsable (→ NOASSERTION). Only the
    header's Format and each Files paragraph's licence synopsis matter.
    """
    path = root / "usr/share/doc" / package / "copyright"
    if path.is_symlink() or not path.is_file():
        return []
    try:
        paragraphs = list(_stanzas(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return []
    if not paragraphs or not _MACHINE_READABLE.search(paragraphs[0].get("Format", "")):
        return []
    found: set[str] = set()
    for para in paragraphs[1:]:
        synopsis = para.get("License", "").strip()
        if "Files" in para and synopsis:
            found.add(debian_to_spdx(synopsis.splitlines()[0].strip()))
    found.discard(NOASSERTION)
    return sorted(found)


def combine(licences: list[str]) -> str:
    """The package's declared licence: the conjunction of its files' licences."""
    if not licences:
        return NOASSERTION
    if len(licences) == 1:
        return licences[0]
    return " AND ".join(f"({x})" if " " in x else x for x in licences)
