"""Promotion policy table over real catalog records and real evidence files (signed with real keys):
each rule failing alone, evidence missing, stale or tampered, waivers expired; decisions verify; rollback."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiln.catalog import Catalog, NewImage
from kiln.catalog import promotions as moves
from kiln.errors import KilnError, ValidationFailed
from kiln.evidence.signing import generate_key, load_private_key, sign_envelope
from kiln.models import Evidence
from kiln.promotion.decide import PromotionDenied, check_channels, promote, rollback, verify
from kiln.promotion.policy import load_policy

NOW = datetime.now(UTC)
POLICY = """\
version: 1
channels: [dev, staging, prod]
policies:
  staging:
    tests_passed: true
    sbom: true
    scan:
      max_age_hours: 24
      max_db_age_hours: 48
      fail_on: high
      waivers:
        - {cve: CVE-2026-0002, owner: sec-team, reason: not reachable, expires: 2099-01-01}
        - {cve: CVE-2026-0003, owner: sec-team, reason: was accepted, expires: 2020-01-01}
    compliance_min: 70
    signature: {keys: [trusted.key.pub]}
    parent_channel: true
    min_hours_in_previous: 0
"""


class World:
    def __init__(self, root: Path, catalog: Catalog) -> None:
        self.root = root
        self.catalog = catalog
        self.trusted = generate_key(root / "trusted.key")
        self.other = generate_key(root / "other.key")
        (root / "policy.yaml").write_text(POLICY)
        self.policy = load_policy(root / "policy.yaml")
        self.count = 0

    def file(self, name: str, data: bytes) -> Evidence:
        path = self.root / "blobs" / f"{self.count}-{name}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return Evidence(kind=name, path=str(path), digest="sha256:" + hashlib.sha256(data).hexdigest())

    def image(self, name: str, **change: Any) -> str:
        """A recorded image whose evidence passes the staging policy, except what ``change`` says."""
        self.count += 1
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        findings = change.get("findings", [{"vuln_id": "CVE-2026-0001", "package": "bash", "severity": "low",
                                             "status": "fixable"}])  # fmt: skip
        report = {"sources": [{"name": "debian", "imported_at": change.get("db_time", NOW - timedelta(hours=2)).timestamp()}],
                  "findings": findings}  # fmt: skip
        payload = json.dumps({"subject": [{"digest": {"sha256": digest.removeprefix("sha256:")}}]}).encode()
        signer = load_private_key(self.other.private if change.get("untrusted") else self.trusted.private)
        evidence = {
            "sbom-spdx": self.file("sbom-spdx", b'{"spdxVersion": "SPDX-2.3"}'),
            "vulnerability-report": self.file("vulnerability-report", json.dumps(report).encode()),
            "compliance-results": self.file("compliance-results", json.dumps({"score": change.get("score", 88.5)}).encode()),
            "provenance-signed": self.file("provenance-signed", sign_envelope(payload, signer)),
        }  # fmt: skip
        for kind in change.get("drop", []):
            del evidence[kind]
        log = self.root / f"{name}.jsonl"
        events = [{"kind": "start", "scope": "build"}]
        if not change.get("untested"):
            events.append(
                {
                    "kind": "end",
                    "scope": "test",
                    "status": "passed",  # as kiln.verify.phases ends a passing test stage
                    "message": "test on a fresh container instance",
                }
            )
        log.write_text("".join(json.dumps(e) + "\n" for e in events))
        build = self.catalog.start_build(
            recipe_name=name, recipe_version="1.0.0", recipe_path="/r.yaml", log_path=str(log)
        )
        record = self.catalog.finish_build(
            build, NewImage(name=name, version="1.0.0", digest=digest, created=NOW, parent=change.get("parent", "debian:bookworm"),
                            evidence=list(evidence.values()))
        )  # fmt: skip
        for kind, data in change.get("tamper", {}).items():
            Path(evidence[kind].path).write_bytes(data)
        return record.ref

    def set_state(self, name: str, state: str) -> None:
        with sqlite3.connect(self.root / "catalog.db") as db:
            db.execute("UPDATE images SET state = ? WHERE name = ?", (state, name))

    def to_staging(self, ref: str, now: datetime = NOW) -> None:
        promote(self.catalog, ref, "dev", self.policy, key=self.trusted.private, who="ci", now=now)
        promote(self.catalog, ref, "staging", self.policy, key=self.trusted.private, who="ci", now=now)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("promotion")
    with Catalog.open(f"sqlite:///{root}/catalog.db") as catalog:
        yield World(root, catalog)


def expired_waiver() -> dict[str, Any]:
    return {
        "findings": [
            {"vuln_id": "CVE-2026-0003", "package": "openssl", "severity": "critical", "status": "fixable"}
        ]
    }


CASES: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    ("inactive", lambda: {"state": "deprecated"}, "active", "image is deprecated"),
    ("untested", lambda: {"untested": True}, "tests_passed", "no test phase"),
    ("no-sbom", lambda: {"drop": ["sbom-spdx"]}, "sbom", "no SBOM recorded"),
    ("tampered-sbom", lambda: {"tamper": {"sbom-spdx": b"{}"}}, "sbom", "does not match its recorded digest"),
    ("no-scan", lambda: {"drop": ["vulnerability-report"]}, "scan", "no vulnerability scan recorded"),
    ("old-db", lambda: {"db_time": NOW - timedelta(days=3)}, "scan", "vulnerability database was"),
    (
        "high",
        lambda: {
            "findings": [
                {"vuln_id": "CVE-2026-0009", "package": "zlib", "severity": "high", "status": "fixable"}
            ]
        },
        "scan",
        "1 finding(s) ≥ high: CVE-2026-0009",
    ),
    ("expired-waiver", expired_waiver, "scan", "expired waiver(s): CVE-2026-0003"),
    ("low-score", lambda: {"score": 61.0}, "compliance", "score 61 (at least 70)"),
    ("no-compliance", lambda: {"drop": ["compliance-results"]}, "compliance", "no compliance results"),
    ("untrusted", lambda: {"untrusted": True}, "signature", "none of the trusted keys"),
    ("unsigned", lambda: {"drop": ["provenance-signed"]}, "signature", "no signed provenance"),
    ("orphan-parent", lambda: {"parent": "base-image@1.0.0/1"}, "parent_channel", "is not in staging"),
]


@pytest.mark.parametrize(("case", "change", "rule", "detail"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_failing_alone_denies_and_is_recorded(
    world: World, case: str, change: Callable[[], dict[str, Any]], rule: str, detail: str
) -> None:
    if case == "orphan-parent":
        world.image("base-image")  # recorded, but never promoted anywhere
    changes = change()
    ref = world.image(f"img-{case}", **changes)
    promote(world.catalog, ref, "dev", world.policy, key=world.trusted.private, who="ci", now=NOW)
    if "state" in changes:  # deprecated after it entered dev
        world.set_state(f"img-{case}", changes["state"])
    with pytest.raises(PromotionDenied) as denied:
        promote(world.catalog, ref, "staging", world.policy, key=world.trusted.private, who="ci", now=NOW)
    (decision,) = [r for r in moves.history(world.catalog, f"img-{case}", "staging")]
    assert not decision.allowed and f"decision {decision.id}" in denied.value.message
    failed = [r for r in decision.decision["rules"] if not r["passed"]]
    assert [r["rule"] for r in failed] == [rule], failed  # only this rule failed
    assert detail in failed[0]["detail"]
    assert moves.current(world.catalog, f"img-{case}", "staging") is None
    verify(decision, world.trusted.public)  # denied decisions are signed too


def test_all_evidence_good_promotes_with_a_signed_verifiable_record(world: World) -> None:
    ref = world.image("img-good", findings=[
        {"vuln_id": "CVE-2026-0002", "package": "bash", "severity": "critical", "status": "fixable"}])  # fmt: skip
    world.to_staging(ref)
    current = moves.current(world.catalog, "img-good", "staging")
    assert current is not None and current.image == ref
    assert all(r["passed"] for r in current.decision["rules"])
    scan = next(r for r in current.decision["rules"] if r["rule"] == "scan")
    assert "(1 waived)" in scan["detail"]
    assert current.decision["policy"]["digest"] == world.policy.digest
    assert set(current.decision["evidence"]) == {"sbom-spdx", "vulnerability-report", "compliance-results",
                                                  "provenance-signed"}  # fmt: skip
    verify(current, world.trusted.public)
    with pytest.raises(KilnError):
        verify(current, world.other.public)  # another key
    forged = current.model_copy(update={"decision": {**current.decision, "channel": "prod"}})
    with pytest.raises(KilnError, match="differs from the signed decision"):
        verify(forged, world.trusted.public)


def test_stale_scan_and_time_in_previous_channel(world: World) -> None:
    ref = world.image("img-stale")
    promote(world.catalog, ref, "dev", world.policy, key=world.trusted.private, who="ci", now=NOW)
    later = NOW + timedelta(hours=30)  # NOW is import time: the image's scan is a little younger
    with pytest.raises(PromotionDenied, match=r"scan: scan is (29|30)\.\d h old \(at most 24 h\)"):
        promote(world.catalog, ref, "staging", world.policy, key=world.trusted.private, who="ci", now=later)
    never = world.image("img-skipper")
    with pytest.raises(PromotionDenied, match="previous_channel: never in dev"):
        promote(world.catalog, never, "staging", world.policy, key=world.trusted.private, who="ci", now=NOW)


def test_rollback_returns_the_previous_version_and_is_signed(world: World) -> None:
    first = world.image("img-roll")
    world.to_staging(first)
    second = world.image("img-roll")  # build 2 of the same name and version
    world.to_staging(second, NOW + timedelta(minutes=1))
    assert moves.current(world.catalog, "img-roll", "staging").image == second  # type: ignore[union-attr]
    back = rollback(
        world.catalog, "img-roll", "staging", key=world.trusted.private, who="oncall", reason="bad"
    )
    assert back.image == first and back.action == "rollback" and back.decision["previous"] == second
    assert moves.current(world.catalog, "img-roll", "staging").image == first  # type: ignore[union-attr]
    verify(back, world.trusted.public)
    with pytest.raises(KilnError, match="no earlier version"):
        rollback(world.catalog, "img-roll", "dev", key=world.trusted.private, who="x") if False else rollback(
            world.catalog, "img-good", "staging", key=world.trusted.private, who="x"
        )


def test_no_signing_key_fails_closed_and_bad_policy_names_its_line(world: World, tmp_path: Path) -> None:
    ref = world.image("img-nokey")
    with pytest.raises(KilnError, match="no signing key"):
        promote(world.catalog, ref, "dev", world.policy, key=None, who="ci")
    assert moves.history(world.catalog, "img-nokey") == []
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        "version: 1\nchannels: [dev, prod]\npolicies:\n  prod:\n    compliance_min: 170\n  qa: {}\n"
    )
    with pytest.raises(ValidationFailed) as failed:
        load_policy(bad)
    assert "policy.yaml:5:5: policies.prod.compliance_min" in str(failed.value)
    bad.write_text("version: 1\nchannels: [dev, prod]\npolicies:\n  qa: {}\n")
    with pytest.raises(ValidationFailed, match=r"unknown channel.*qa"):
        load_policy(bad)


def test_a_cve_found_after_promotion_flags_and_demotes(world: World, tmp_path: Path) -> None:
    first = world.image("img-cve")
    world.to_staging(first)
    second = world.image("img-cve")
    world.to_staging(second, NOW + timedelta(minutes=1))
    later = NOW + timedelta(hours=1)
    assert all(not s.failed for s in check_channels(world.catalog, "img-cve", world.policy, key=None, who="x",
                                                   apply=False, now=later))  # fmt: skip
    # A new scan of the second build (attached after the build) finds a critical CVE.
    report = {"scanned_at": later.isoformat(), "sources": [{"imported_at": later.timestamp()}],
              "findings": [{"vuln_id": "CVE-2026-7777", "package": "openssl", "severity": "critical",
                            "status": "fixable"}]}  # fmt: skip
    world.catalog.add_evidence(second, world.file("vulnerability-report", json.dumps(report).encode()))
    shown = check_channels(world.catalog, "img-cve", world.policy, key=None, who="x", apply=False, now=later)
    staging = next(s for s in shown if s.channel == "staging")
    assert staging.image == second and [r.rule for r in staging.failed] == ["scan"]
    assert "CVE-2026-7777" in staging.failed[0].detail and staging.demoted_to is None

    demoting = load_policy(_with(world, tmp_path, "on_violation: demote\n"))
    applied = check_channels(world.catalog, "img-cve", demoting, key=world.trusted.private, who="sched",
                             apply=True, now=later)  # fmt: skip
    assert next(s for s in applied if s.channel == "staging").demoted_to == first
    move = moves.current(world.catalog, "img-cve", "staging")
    assert move is not None and move.image == first and move.action == "demote"
    assert move.decision["cause"][0]["rule"] == "scan" and move.decision["previous"] == second
    verify(move, world.trusted.public)


def _with(world: World, tmp_path: Path, extra: str) -> Path:
    """The module's policy plus ``extra``, beside a copy of its trusted key."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY + extra)
    (tmp_path / "trusted.key.pub").write_bytes(world.trusted.public.read_bytes())
    return path


def test_name_at_channel_resolves_where_references_are_accepted(world: World) -> None:
    first = world.image("img-ref")
    world.to_staging(first)
    second = world.image("img-ref")
    promote(world.catalog, second, "dev", world.policy, key=world.trusted.private, who="ci", now=NOW)
    assert world.catalog.get_image("img-ref@dev").ref == second
    assert world.catalog.get_image("kiln:img-ref@staging").ref == first
    assert world.catalog.get_image("img-ref@1.0.0/1").ref == first  # versions still parse as before
    with pytest.raises(KilnError, match="no image of img-ref in channel prod"):
        world.catalog.get_image("img-ref@prod")
