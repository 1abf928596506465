"""Match an image's packages against the vulnerability database (Debian rules).

Per release codename from the image's os-release, on the *source* package and version, with
Debian version comparison: fixed ``0`` → never affected; fixed X → vulnerable while installed < X
(fixable); ``open`` → vulnerable without a fix (no-dsa/postponed notes kept); ``undetermined`` →
unknown. Debian urgencies map to severities (``**`` marks an urgency guessed from NVD).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from kiln.errors import KilnError
from kiln.evidence.debversion import compare
from kiln.evidence.installed import OsRelease, read_os_release
from kiln.evidence.vulndb import Record, VulnDb
from kiln.rootfs.dpkg import STATUS_FILE, installed_packages

Severity = Literal["unknown", "negligible", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("unknown", "negligible", "low", "medium", "high", "critical")
FindingStatus = Literal["fixable", "no-fix", "undetermined"]
REPORT_FORMAT = "kiln-scan-v1"
SCAN_FILES = frozenset({STATUS_FILE, "etc/os-release", "usr/lib/os-release"})
"""What the scanner reads: the rest of an image need not be unpacked to scan it."""

_URGENCY: dict[str, Severity] = {
    "unimportant": "negligible",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}


@lru_cache(maxsize=256)
def severity_of(urgency: str | None) -> Severity:
    key = (urgency or "").strip().rstrip("*").lower()
    return _URGENCY.get(key, "unknown")


_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def severity_rank(severity: Any) -> int:
    return _RANK.get(severity, 0)


class Finding(NamedTuple):
    """One vulnerability of one installed source package (a NamedTuple: scans build thousands)."""

    vuln_id: str
    package: str  # source package
    installed: str  # installed source version
    fixed: str | None
    severity: Severity
    status: FindingStatus
    binaries: tuple[str, ...]
    note: str | None = None
    description: str | None = None


@dataclass
class ScanReport:
    image: str
    distro: str
    release: str
    packages: int
    sources: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)

    def by_severity(self) -> dict[str, int]:
        counts = dict.fromkeys(SEVERITIES, 0)
        for f in self.findings:
            counts[f.severity] += 1
        return {k: v for k, v in counts.items() if v}

    def summary(self) -> dict[str, Any]:
        return {
            "vulnerabilities": len(self.findings),
            "fixable": sum(1 for f in self.findings if f.status == "fixable"),
            "by_severity": self.by_severity(),
        }

    def to_json(self) -> bytes:
        doc = {
            "format": REPORT_FORMAT,
            "image": self.image,
            "distro": self.distro,
            "release": self.release,
            "packages": self.packages,
            "sources": self.sources,
            "summary": self.summary(),
            "findings": [f._asdict() for f in self.findings],
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def match(records: list[Record], installed: dict[str, tuple[str, list[str]]]) -> list[Finding]:
    """Findings for ``installed`` = {source: (source version, [binary names])}."""
    binaries = {source: tuple(sorted(names)) for source, (_, names) in installed.items()}
    findings = []
    for rec in records:
        if rec.package not in installed:
            continue
        version = installed[rec.package][0]
        if rec.status == "fixed":
            if rec.fixed in (None, "0") or compare(version, rec.fixed) >= 0:
                continue
            status: FindingStatus = "fixable"
        elif rec.status == "open":
            status = "no-fix"
        elif rec.status == "undetermined":
            status = "undetermined"
        else:
            continue
        fixed = rec.fixed if status == "fixable" else None
        findings.append(
            Finding(
                rec.vuln_id,
                rec.package,
                version,
                fixed,
                severity_of(rec.urgency),
                status,
                binaries[rec.package],
                rec.note,
            )
        )
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), f.package, f.vuln_id))


def installed_sources(root: Path) -> tuple[int, dict[str, tuple[str, list[str]]]]:
    """(binary package count, {source: (source version, binaries)}) from the image's dpkg status."""
    debs = installed_packages(root)
    sources: dict[str, tuple[str, list[str]]] = {}
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in debs:
        grouped[(d.source, d.source_version)].append(d.name)
    for (source, version), binaries in sorted(grouped.items()):
        # Two versions of one source (rare: partial upgrades): keep the oldest, it is the exposed one.
        if source not in sources or compare(version, sources[source][0]) < 0:
            sources[source] = (version, binaries)
    return len(debs), sources


def scan_root(root: Path, db: VulnDb, *, image: str = "") -> ScanReport:
    """Scan the root filesystem of an image; raises KilnError for non-Debian roots or an empty DB."""
    os_release: OsRelease = read_os_release(root)
    if os_release.id != "debian":
        name = os_release.pretty_name or os_release.id
        raise KilnError(f"{image or root}: vulnerability matching supports Debian images, not {name}")
    if not os_release.codename:
        raise KilnError(
            f"{image or root}: cannot tell the Debian release (no VERSION_CODENAME in os-release)"
        )
    count, sources = installed_sources(root)
    records = db.lookup(os_release.codename, sorted(sources))
    feeds = [
        {"name": s.name, "digest": s.digest, "imported_at": s.imported_at, "records": s.records}
        for s in db.sources()
    ]
    findings = match(records, sources)
    texts = db.descriptions(sorted({f.vuln_id for f in findings}))
    findings = [f._replace(description=texts.get(f.vuln_id)) for f in findings]
    return ScanReport(image or str(root), os_release.id, os_release.codename, count, feeds, findings)
