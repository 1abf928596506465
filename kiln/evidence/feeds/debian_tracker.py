"""Debian Security Tracker JSON (``https://security-tracker.debian.org/tracker/data/json``).

Shape: ``{source package: {vuln id: {description, releases: {codename: {status, fixed_version,
urgency, nodsa, nodsa_reason, repositories}}}}}``. Non-CVE ids (TEMP-…) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kiln.evidence.feeds import FeedError, load_json, read_bytes
from kiln.evidence.vulndb import Record

KIND = "debian-tracker"


def parse(data: Any, where: str) -> Iterator[Record]:
    if not isinstance(data, dict):
        raise FeedError(f"{where}: expected a JSON object of source packages")
    for package, vulns in data.items():
        if not isinstance(vulns, dict):
            raise FeedError(f"{where}: {package}: expected an object of vulnerabilities")
        for vuln_id, entry in vulns.items():
            if not vuln_id.startswith("CVE-") or not isinstance(entry, dict):
                continue
            releases = entry.get("releases") or {}
            if not isinstance(releases, dict):
                continue
            description = entry.get("description")
            for release, info in releases.items():
                record = _record(package, vuln_id, release, info, description)
                if record is not None:
                    yield record


def _record(package: str, vuln_id: str, release: str, info: Any, description: str | None) -> Record | None:
    if not isinstance(info, dict):
        return None
    status = info.get("status")
    urgency = info.get("urgency")
    note_parts = [info.get("nodsa_reason"), info.get("nodsa")]
    if info.get("nodsa") is not None or info.get("nodsa_reason"):
        note_parts.insert(0, "no-dsa")
    note = ": ".join(str(p) for p in note_parts if p) or None
    if status == "resolved":
        fixed = info.get("fixed_version")
        if not fixed:
            return None
        return Record(release, package, vuln_id, "fixed", str(fixed), urgency, note, description)
    if status == "open":
        return Record(release, package, vuln_id, "open", None, urgency, note, description)
    if status == "undetermined":
        return Record(release, package, vuln_id, "undetermined", None, urgency, note, description)
    return None


def records(path: Path) -> Iterator[Record]:
    yield from parse(load_json(read_bytes(path), str(path)), str(path))
