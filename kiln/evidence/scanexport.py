"""Scan report exports: CycloneDX 1.6 VEX (cyclonedx-python-lib) and SARIF 2.1.0."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from packageurl import PackageURL

from kiln import __version__
from kiln.evidence.sbom import KILN_NAMESPACE
from kiln.evidence.vulnscan import Finding, ScanReport
from kiln.rootfs.dpkg import STATUS_FILE

TRACKER_URL = "https://security-tracker.debian.org/tracker/"
_CDX_SEVERITY = {"negligible": "info", "unknown": "unknown"}
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def source_purl(report: ScanReport, finding: Finding) -> str:
    qualifiers = {"arch": "source", "distro": f"{report.distro}-{report.release}"}
    purl = PackageURL(
        type="deb",
        namespace=report.distro,
        name=finding.package,
        version=finding.installed,
        qualifiers=qualifiers,
    )
    return purl.to_string()


def cyclonedx_vex(report: ScanReport, timestamp: datetime) -> bytes:
    from cyclonedx.model import XsUri
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.impact_analysis import ImpactAnalysisState
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityAnalysis,
        VulnerabilityRating,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )
    from cyclonedx.output.json import JsonV1Dot6

    components: dict[str, Component] = {}
    vulns = []
    for f in report.findings:
        ref = source_purl(report, f)
        if ref not in components:
            components[ref] = Component(
                name=f.package,
                version=f.installed,
                type=ComponentType.LIBRARY,
                bom_ref=ref,
                purl=PackageURL.from_string(ref),
            )
        state = (
            ImpactAnalysisState.EXPLOITABLE if f.status != "undetermined" else ImpactAnalysisState.IN_TRIAGE
        )
        detail = f"fixed in {f.fixed}" if f.fixed else (f.note or f.status)
        severity = VulnerabilitySeverity(_CDX_SEVERITY.get(f.severity, f.severity))
        vulns.append(
            Vulnerability(
                bom_ref=f"{f.vuln_id}:{f.package}",
                id=f.vuln_id,
                source=VulnerabilitySource(name="Debian", url=XsUri(TRACKER_URL + f.vuln_id)),
                ratings=[VulnerabilityRating(severity=severity)],
                description=f.description,
                recommendation=f"upgrade {f.package} to {f.fixed} or later" if f.fixed else None,
                analysis=VulnerabilityAnalysis(state=state, detail=detail),
                affects=[BomTarget(ref=ref)],
            )
        )
    root = Component(name=report.image, type=ComponentType.CONTAINER, bom_ref=f"image:{report.image}")
    bom = Bom(
        components=components.values(),
        vulnerabilities=vulns,
        metadata=BomMetaData(component=root, timestamp=timestamp.replace(microsecond=0)),
    )
    bom.serial_number = uuid.uuid5(KILN_NAMESPACE, "vex:" + report.to_json().decode())
    bom.register_dependency(root, components.values())
    text = JsonV1Dot6(bom).output_as_string()
    return (json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n").encode()


def sarif(report: ScanReport) -> bytes:
    rules: dict[str, dict[str, object]] = {}
    results = []
    for f in report.findings:
        rules.setdefault(
            f.vuln_id,
            {
                "id": f.vuln_id,
                "shortDescription": {"text": (f.description or f.vuln_id)[:200]},
                "helpUri": TRACKER_URL + f.vuln_id,
                "properties": {"security-severity-label": f.severity},
            },
        )
        fix = f"; fixed in {f.fixed}" if f.fixed else ("; " + f.note if f.note else "; no fix available")
        results.append(
            {
                "ruleId": f.vuln_id,
                "level": _SARIF_LEVEL.get(f.severity, "none"),
                "message": {
                    "text": f"{f.package} {f.installed} is affected by {f.vuln_id} ({f.severity}{fix})"
                },
                "locations": [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": STATUS_FILE}},
                        "logicalLocations": [{"name": b, "kind": "package"} for b in f.binaries],
                    }
                ],
                "properties": {"status": f.status, "installed": f.installed, "fixed": f.fixed},
            }
        )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kiln",
                        "version": __version__,
                        "informationUri": "https://security-tracker.debian.org/",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
