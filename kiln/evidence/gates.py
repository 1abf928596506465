"""Vulnerability gates: allow-list (OpenVEX) and the fail decision."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime

from kiln import __version__
from kiln.evidence.settings import AllowEntry, ScanGate
from kiln.evidence.vulnscan import Finding, ScanReport, severity_rank

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"


@dataclass(frozen=True)
class GateResult:
    failed: list[Finding]
    suppressed: list[tuple[Finding, AllowEntry]]
    expired: list[AllowEntry]

    @property
    def passed(self) -> bool:
        return not self.failed

    def message(self, gate: ScanGate) -> str:
        what = f"severity {gate.fail_on} or worse" + (", fixable" if gate.only_fixable else "")
        lines = [f"vulnerability gate failed: {len(self.failed)} finding(s) of {what}:"]
        for f in self.failed[:50]:
            fix = f"fixed in {f.fixed}" if f.fixed else f.status
            lines.append(f"  {f.vuln_id}  {f.package} {f.installed}  {f.severity}  ({fix})")
        if len(self.failed) > 50:
            lines.append(f"  … and {len(self.failed) - 50} more (see the scan report)")
        for entry in self.expired:
            lines.append(f"  note: allow-list entry {entry.cve} expired on {entry.expires}")
        return "\n".join(lines)


def _allowed(finding: Finding, allow: list[AllowEntry], today: date) -> AllowEntry | None:
    for entry in allow:
        if (
            entry.cve == finding.vuln_id
            and entry.expires >= today
            and entry.package in (None, finding.package)
        ):
            return entry
    return None


def evaluate(report: ScanReport, gate: ScanGate, today: date) -> GateResult:
    """Which findings fail the gate, which the allow-list suppresses (until its expiry)."""
    threshold = severity_rank(gate.fail_on) if gate.fail_on else None
    failed: list[Finding] = []
    suppressed: list[tuple[Finding, AllowEntry]] = []
    for finding in report.findings:
        entry = _allowed(finding, gate.allow, today)
        if entry is not None:
            suppressed.append((finding, entry))
            continue
        if threshold is None or severity_rank(finding.severity) < threshold:
            continue
        if gate.only_fixable and finding.status != "fixable":
            continue
        failed.append(finding)
    expired = [e for e in gate.allow if e.expires < today]
    return GateResult(failed, suppressed, expired)


def openvex(gate: ScanGate, report: ScanReport, product: str, timestamp: datetime, today: date) -> bytes:
    """The allow-list as an OpenVEX document: one ``not_affected`` statement per active entry."""
    statements = []
    packages = {
        f.vuln_id: sorted({x.package for x in report.findings if x.vuln_id == f.vuln_id})
        for f in report.findings
    }
    for entry in sorted(gate.allow, key=lambda e: (e.cve, e.package or "")):
        if entry.expires < today:
            continue
        subcomponents = [
            {"@id": f"pkg:deb/debian/{p}"}
            for p in ([entry.package] if entry.package else packages.get(entry.cve, []))
        ]
        product_entry: dict[str, object] = {"@id": product}
        if subcomponents:
            product_entry["subcomponents"] = subcomponents
        statements.append(
            {
                "vulnerability": {"name": entry.cve},
                "products": [product_entry],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": f"{entry.reason} (accepted until {entry.expires.isoformat()})",
                "timestamp": timestamp.isoformat(),
            }
        )
    body = {
        "@context": OPENVEX_CONTEXT,
        "author": f"kiln {__version__}",
        "timestamp": timestamp.isoformat(),
        "version": 1,
        "statements": statements,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    body["@id"] = f"https://kiln.invalid/vex/{digest}"
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
