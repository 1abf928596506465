"""Matching rules on the real Debian 12 root, exports, gates and the OpenVEX allow-list."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from kiln.errors import KilnError
from kiln.evidence.feeds import debian_tracker
from kiln.evidence.gates import evaluate, openvex
from kiln.evidence.scanexport import cyclonedx_vex, sarif
from kiln.evidence.settings import AllowEntry, ScanGate
from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnimport import import_feed
from kiln.evidence.vulnscan import ScanReport, installed_sources, match, scan_root
from kiln.monitor import ListMonitor
from kiln.store import Store
from tests.evidence.synthetic import tracker_for

NOW = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def report(image_root: Path, store: Store, tmp_path: Path) -> ScanReport:
    _, sources = installed_sources(image_root)
    feed = tmp_path / "tracker.json"
    feed.write_text(json.dumps(tracker_for({k: v[0] for k, v in sources.items()})))
    import_feed(store, str(feed), ListMonitor())
    return scan_root(image_root, VulnDb.open(store), image="debian-web:1.2.0")


def test_matching_rules_on_real_root(report: ScanReport, image_root: Path) -> None:
    _, sources = installed_sources(image_root)
    found = {f.vuln_id: f for f in report.findings}
    assert set(found) == {
        "CVE-1999-90001",
        "CVE-2011-3374",
        "CVE-1999-90004",
        "CVE-1999-90005",
        "CVE-1999-90007",
    }
    glibc = found["CVE-1999-90001"]
    assert (glibc.status, glibc.severity, glibc.installed) == ("fixable", "high", sources["glibc"][0])
    assert glibc.fixed == sources["glibc"][0] + "+kiln1" and "libc6" in glibc.binaries
    assert (found["CVE-2011-3374"].status, found["CVE-2011-3374"].severity) == ("no-fix", "negligible")
    assert found["CVE-1999-90004"].note == "no-dsa: postponed: Minor issue"
    assert found["CVE-1999-90004"].severity == "low"
    assert (found["CVE-1999-90005"].status, found["CVE-1999-90005"].severity) == ("undetermined", "unknown")
    assert found["CVE-1999-90007"].status == "fixable"  # epoch kept, later revision
    assert report.release == "bookworm" and report.packages >= 90
    assert report.summary()["by_severity"] == {
        "unknown": 1,
        "negligible": 1,
        "low": 1,
        "medium": 1,
        "high": 1,
    }
    assert report.findings[0].severity == "high"  # worst first


def test_real_tracker_fixture_rules(vuln_fixtures: Path) -> None:
    records = list(debian_tracker.records(vuln_fixtures / "debian-security-tracker-json/vunnel-debian.json"))
    records += debian_tracker.records(
        vuln_fixtures / "debian-security-tracker-json/osvdev-debian_security_tracker_mock.json"
    )
    bookworm = [r for r in records if r.release == "bookworm"]
    installed = {
        "sope": ("5.8.0-1", ["sope4.9-libxml"]),
        "apparmor": ("3.0.8-3", ["apparmor"]),
        "chromium": ("98.0.4758.80-1", ["chromium"]),
    }
    found = {(f.package, f.vuln_id): f for f in match(bookworm, installed)}
    assert found[("sope", "CVE-2025-53603")].fixed == "5.8.0-1+deb12u1"
    assert found[("apparmor", "CVE-2016-1585")].status == "no-fix"
    assert ("apparmor", "CVE-2014-1424") not in found  # fixed_version 0
    assert ("chromium", "CVE-2022-0456") not in found  # installed == fixed
    patched = {"sope": ("5.8.0-1+deb12u1", ["sope"])}
    assert not [f for f in match(bookworm, patched) if f.package == "sope"]


def test_exports_validate(report: ScanReport) -> None:
    vex = cyclonedx_vex(report, NOW)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(vex.decode()) is None
    assert vex == cyclonedx_vex(report, NOW)
    vulns = json.loads(vex)["vulnerabilities"]
    assert {v["id"] for v in vulns} == {f.vuln_id for f in report.findings}
    doc = json.loads(sarif(report))
    assert doc["version"] == "2.1.0"
    levels = {r["ruleId"]: r["level"] for r in doc["runs"][0]["results"]}
    assert levels["CVE-1999-90001"] == "error" and levels["CVE-2011-3374"] == "none"
    assert json.loads(report.to_json())["summary"]["fixable"] == 2


@pytest.mark.parametrize(
    ("gate", "failing"),
    [
        (ScanGate(fail_on="high"), {"CVE-1999-90001"}),
        (ScanGate(fail_on="medium", only_fixable=True), {"CVE-1999-90001", "CVE-1999-90007"}),
        (ScanGate(fail_on="low"), {"CVE-1999-90001", "CVE-1999-90007", "CVE-1999-90004"}),
        (ScanGate(fail_on="low", only_fixable=True), {"CVE-1999-90001", "CVE-1999-90007"}),
        (ScanGate(), set()),
    ],
)
def test_gates(report: ScanReport, gate: ScanGate, failing: set[str]) -> None:
    result = evaluate(report, gate, date(2026, 11, 23))
    assert {f.vuln_id for f in result.failed} == failing
    if failing:
        assert "CVE-1999-90001" in result.message(gate)


def test_allow_list_until_expiry(report: ScanReport) -> None:
    entry = AllowEntry(cve="CVE-1999-90001", reason="no setuid binaries", expires=date(2026, 12, 31))
    gate = ScanGate(fail_on="high", allow=[entry])
    assert evaluate(report, gate, date(2026, 12, 31)).passed
    later = evaluate(report, gate, date(2027, 1, 1))
    assert not later.passed and later.expired == [entry] and "expired" in later.message(gate)
    vex = json.loads(openvex(gate, report, "pkg:oci/debian-web@sha256:ab", NOW, date(2026, 11, 23)))
    assert vex["@context"] == "https://openvex.dev/ns/v0.2.0"
    (stmt,) = vex["statements"]
    assert stmt["vulnerability"]["name"] == "CVE-1999-90001" and stmt["status"] == "not_affected"
    assert stmt["products"][0]["subcomponents"] == [{"@id": "pkg:deb/debian/glibc"}]
    assert "2026-12-31" in stmt["impact_statement"]
    assert json.loads(openvex(gate, report, "p", NOW, date(2027, 1, 2)))["statements"] == []


def test_allow_entry_validation() -> None:
    with pytest.raises(ValueError, match="not a vulnerability id"):
        AllowEntry(cve="cve 2024", reason="x", expires=date(2027, 1, 1))
    with pytest.raises(ValueError, match="Extra inputs"):
        ScanGate.model_validate({"fail_on": "high", "fial": 1})


def test_non_debian_root_is_refused(tmp_path: Path, store: Store) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('ID=alpine\nPRETTY_NAME="Alpine Linux v3.20"\n')
    with pytest.raises(KilnError, match="Alpine"):
        scan_root(tmp_path, VulnDb.open(store))


def test_collect_gate_fails_build_with_offending_cves(
    report: ScanReport, image_root: Path, store: Store, tmp_path: Path
) -> None:
    from kiln.errors import BuildFailed
    from kiln.evidence.collect import EvidenceSettings, ImageFacts, collect_evidence

    facts = ImageFacts(
        "web",
        "1.0.0/1",
        "sha256:" + "a" * 64,
        NOW,
        [],
        tmp_path / "r.yaml",
        "sha256:" + "b" * 64,
        [],
        "debian:bookworm",
        "k",
        None,
        [],
        [],
        NOW,
        NOW,
    )
    gate = ScanGate(fail_on="medium", only_fixable=True)
    with pytest.raises(BuildFailed, match="2 finding") as exc:
        collect_evidence(image_root, facts, EvidenceSettings(scan=gate), store, ListMonitor())
    assert "CVE-1999-90001" in str(exc.value) and "CVE-1999-90007" in str(exc.value)
    allow = [
        AllowEntry(cve=c, reason="accepted", expires=date(2027, 1, 1))
        for c in ("CVE-1999-90001", "CVE-1999-90007")
    ]
    files = collect_evidence(
        image_root,
        facts,
        EvidenceSettings(scan=ScanGate(fail_on="medium", allow=allow)),
        store,
        ListMonitor(),
    )
    kinds = {f.kind: f for f in files}
    assert set(kinds) == {"sbom-spdx", "sbom-cyclonedx", "vulnerability-report", "vex", "provenance"}
    assert kinds["vulnerability-report"].summary["gate"] == "passed"
    assert kinds["vulnerability-report"].summary["suppressed"] == 2
    assert kinds["sbom-spdx"].summary["packages"] >= 90
    assert all(f.path == store.blob_path(f.digest) for f in files)
