"""OpenSCAP on the real Debian 12 root: derived content, counts, gates; the hardening library."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kiln.errors import BuildFailed
from kiln.evidence.collect import EvidenceSettings, ImageFacts, collect_evidence
from kiln.evidence.compliance import ComplianceResult, evaluate
from kiln.evidence.datastream import ContentMissing, choose_content
from kiln.evidence.installed import OsRelease
from kiln.evidence.settings import ComplianceGate
from kiln.monitor import ListMonitor
from kiln.recipes.loader import BUILTIN_DIR
from kiln.store import Store
from kiln.toe.document import load_document
from kiln.toe.runner import run_document
from kiln.toe.targets import RootfsTarget

BOOKWORM = OsRelease("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
HARDENING = sorted((BUILTIN_DIR / "hardening").glob("*.yaml"))


def test_debian12_content_is_derived(tmp_path: Path) -> None:
    content = choose_content(BOOKWORM, "machine", tmp_path)
    text = content.path.read_text()
    assert content.source.name == "ssg-debian11-ds.xml" and content.ssg_version == "0.1.65"
    assert text.count("^1[12].[0-9]+$") == 2 and "^11.[0-9]+$" not in text
    assert "/.dockerenv" in text and len(content.adaptations) == 3
    assert "[\\s]+bookworm[\\s]+main" in text and "bullseye" not in text
    container = choose_content(BOOKWORM, "container", tmp_path)
    assert len(container.adaptations) == 4 and '<unix:filepath datatype="string">/.dockerenv' not in (
        container.path.read_text()
    )
    with pytest.raises(ContentMissing, match="Alpine"):
        choose_content(OsRelease("alpine", "3.20", "", "Alpine Linux v3.20"), "machine", tmp_path)


def _results(result: ComplianceResult, kind: str) -> set[str]:
    return {r["id"].rsplit("_rule_", 1)[1] for r in result.rules if r["result"] == kind}


def test_real_root_machine_and_container(image_root: Path, tmp_path: Path) -> None:
    tree_before = sorted(str(p) for p in image_root.rglob("*"))
    machine, arf, html = evaluate(image_root, "standard", "machine", tmp_path / "m")
    # The probes wrote nothing into the root (apt's cache used to land there as temp files).
    assert sorted(str(p) for p in image_root.rglob("*")) == tree_before
    assert machine.warnings == []  # the dpkginfo probe started whatever the host's apt configuration says
    assert arf.stat().st_size > 100_000 and "<html" in html.read_text()[:2000].lower()
    assert machine.counts.get("pass", 0) >= 15 and machine.counts.get("fail", 0) >= 10
    # Every rule applies once the platform check accepts Debian 12; only mounts are left to a running system.
    assert machine.applicable + machine.counts["notchecked"] >= 40
    assert _results(machine, "notchecked") == {
        f"partition_for_{p}" for p in ("home", "tmp", "var", "var_log", "var_log_audit")
    }
    assert {r["reason"] for r in machine.rules if r["result"] == "notchecked"} == {
        "needs the mounted partitions of a running system"
    }
    assert "file_permissions_systemmap" in _results(machine, "pass")  # no kernel, no System.map to restrict
    # Packages are read from the image: cron is absent, so "cron enabled" fails whatever would run.
    assert {"package_rsyslog_installed", "package_cron_installed", "service_cron_enabled"} <= _results(
        machine, "fail"
    )
    assert machine.oscap_score < machine.score and machine.oscap_counts["fail"] == machine.counts["fail"] + 5
    container, _, _ = evaluate(image_root, "standard", "container", tmp_path / "c")
    na = {r["id"].rsplit("_rule_", 1)[1] for r in container.rules if r["result"] == "notapplicable"}
    assert "partition_for_home" in na and container.applicable < machine.applicable
    doc = json.loads(machine.to_json())
    assert doc["content"]["adaptations"] and doc["score"] == machine.score


def test_compliance_gate_in_collect(image_root: Path, store: Store, tmp_path: Path) -> None:
    t = datetime(2026, 11, 23, tzinfo=UTC)
    facts = ImageFacts(
        "web",
        "1.0.0/1",
        "sha256:" + "a" * 64,
        t,
        [],
        tmp_path / "r.yaml",
        "sha256:" + "b" * 64,
        [],
        "debian:bookworm",
        "k",
        None,
        [],
        [],
        t,
        t,
    )
    gate = ComplianceGate(profile="standard", min_score=99, target="machine")
    with pytest.raises(BuildFailed, match=r"compliance gate failed: score [\d.]+% < 99") as exc:
        collect_evidence(
            image_root, facts, EvidenceSettings(sbom=False, compliance=gate), store, ListMonitor()
        )
    assert "package_rsyslog_installed" in str(exc.value) and "partition_for_home" not in str(exc.value)
    ok = ComplianceGate(profile="standard", min_score=10, target="machine")
    files = collect_evidence(
        image_root, facts, EvidenceSettings(sbom=False, compliance=ok), store, ListMonitor()
    )
    kinds = {f.kind: f for f in files}
    assert {"compliance-arf", "compliance-report", "compliance-results"} <= set(kinds)
    assert kinds["compliance-results"].summary["score"] > 10


@pytest.mark.parametrize("path", HARDENING, ids=lambda p: p.stem)
def test_hardening_documents_are_valid(path: Path) -> None:
    doc = load_document(path)
    assert {"build", "validate"} <= set(doc.phase_names), path
    assert yaml.safe_load(path.read_text())["description"]


@pytest.mark.e2e
def test_hardening_raises_the_score(writable_root: Path, tmp_path: Path) -> None:
    """Every built-in hardening component builds and validates on a real root; the score goes up."""
    before, _, _ = evaluate(writable_root, "standard", "machine", tmp_path / "before")
    params = {"Install": "true", "Daemon": "ntp"}
    with RootfsTarget(writable_root) as target:
        for path in HARDENING:
            result = run_document(
                load_document(path),
                phases=["build", "validate"],
                parameters=params,
                target=target,
                monitor=ListMonitor(),
            )
            assert result.status == "success", (path.name, result.failure_message)
    after, _, _ = evaluate(writable_root, "standard", "machine", tmp_path / "after")
    passed_after = {r["id"] for r in after.rules if r["result"] == "pass"}
    for rule in (
        "sysctl_fs_suid_dumpable",
        "package_rsyslog_installed",
        "ensure_logrotate_activated",
        "sshd_disable_root_login",
        "package_cron_installed",
        "package_ntp_installed",
    ):
        assert f"xccdf_org.ssgproject.content_rule_{rule}" in passed_after, rule
    assert after.score > before.score + 10
    # Installed and enabled now, but only a running systemd can say whether they run: not checked.
    assert {"service_cron_enabled", "service_rsyslog_enabled"} <= _results(after, "notchecked")
    print(f"standard/machine before {before.score}% ({before.counts}) after {after.score}% ({after.counts})")
