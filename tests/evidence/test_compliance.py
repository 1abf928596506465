"""OpenSCAP on the real Debian 12 root: derived content, counts, gates; the hardening library."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from kiln.errors import BuildFailed
from kiln.evidence.collect import EvidenceSettings, ImageFacts, collect_evidence
from kiln.evidence.compliance import evaluate
from kiln.evidence.datastream import ContentMissing, choose_content
from kiln.evidence.inventory import OsRelease
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
    assert "/.dockerenv" in text and len(content.adaptations) == 1
    container = choose_content(BOOKWORM, "container", tmp_path)
    assert len(container.adaptations) == 2 and '<unix:filepath datatype="string">/.dockerenv' not in (
        container.path.read_text()
    )
    with pytest.raises(ContentMissing, match="Alpine"):
        choose_content(OsRelease("alpine", "3.20", "", "Alpine Linux v3.20"), "machine", tmp_path)


def test_real_root_machine_and_container(image_root: Path, tmp_path: Path) -> None:
    machine, arf, html = evaluate(image_root, "standard", "machine", tmp_path / "m")
    assert arf.stat().st_size > 100_000 and "<html" in html.read_text()[:2000].lower()
    assert machine.counts.get("pass", 0) >= 15 and machine.counts.get("fail", 0) >= 10
    assert machine.applicable >= 40  # every rule applies once the platform check accepts Debian 12
    failing = {r["id"].rsplit("_rule_", 1)[1] for r in machine.rules if r["result"] == "fail"}
    assert {"package_rsyslog_installed", "partition_for_home"} <= failing
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
    assert "partition_for_home" in str(exc.value)
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
    print(f"standard/machine before {before.score}% ({before.counts}) after {after.score}% ({after.counts})")
