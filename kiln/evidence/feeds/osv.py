"""OSV records for Debian (``Debian:12`` ecosystems): a directory or zip of OSV JSON files.

The affected package is the Debian source package; an ECOSYSTEM range with a ``fixed`` event
gives the fixed version, without one the vulnerability is open. Records are keyed by CVE: the
record's own id for ``DEBIAN-CVE-…``, else its CVE aliases (records without a CVE are skipped).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kiln.evidence.feeds import DEBIAN_CODENAMES, FeedError, load_json, read_bytes
from kiln.evidence.vulndb import Record

KIND = "osv-debian"


def _cves(record: dict[str, Any]) -> list[str]:
    rid = str(record.get("id", ""))
    m = re.match(r"^DEBIAN-(CVE-\d+-\d+)$", rid)
    if m:
        return [m.group(1)]
    ids = [a for a in record.get("aliases") or [] if isinstance(a, str) and a.startswith("CVE-")]
    return sorted(set(ids)) or ([rid] if rid.startswith("CVE-") else [])


def parse(record: Any, where: str) -> Iterator[Record]:
    if not isinstance(record, dict) or "affected" not in record:
        raise FeedError(f"{where}: not an OSV record (no 'affected')")
    cves = _cves(record)
    description = record.get("summary") or record.get("details")
    for affected in record.get("affected") or []:
        pkg = affected.get("package") or {}
        ecosystem = str(pkg.get("ecosystem", ""))
        if not ecosystem.startswith("Debian:"):
            continue
        release = DEBIAN_CODENAMES.get(ecosystem.split(":", 1)[1])
        name = pkg.get("name")
        if release is None or not name:
            continue
        urgency = (affected.get("ecosystem_specific") or {}).get("urgency")
        fixed: str | None = None
        for rng in affected.get("ranges") or []:
            if rng.get("type") != "ECOSYSTEM":
                continue
            for event in rng.get("events") or []:
                if "fixed" in event:
                    fixed = str(event["fixed"])
        for cve in cves:
            note = f"via {record.get('id')}"
            if fixed:
                yield Record(release, name, cve, "fixed", fixed, urgency, note, description)
            else:
                yield Record(release, name, cve, "open", None, urgency, note, description)


def records(path: Path) -> Iterator[Record]:
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            yield from parse(load_json(read_bytes(file), str(file)), str(file))
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for member in sorted(zf.namelist()):
                if member.endswith(".json"):
                    yield from parse(load_json(zf.read(member), f"{path}:{member}"), f"{path}:{member}")
        return
    data = load_json(read_bytes(path), str(path))
    for i, rec in enumerate(data if isinstance(data, list) else [data]):
        yield from parse(rec, f"{path}[{i}]")
