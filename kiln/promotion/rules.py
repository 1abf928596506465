"""One channel's policy evaluated over a recorded image's evidence. Fail closed: evidence that is
missing, stale, unreadable or no longer matching its recorded digest denies, and the result names the
rule and why."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.catalog import Catalog, EvidenceRecord, ImageRecord
from kiln.catalog import promotions as moves
from kiln.catalog.refs import REF
from kiln.errors import KilnError
from kiln.evidence.signing import SignatureInvalid, load_public_key, open_envelope
from kiln.evidence.vulnscan import SEVERITIES
from kiln.promotion.policy import ChannelPolicy, LoadedPolicy, ScanRule

if TYPE_CHECKING:
    from kiln.store import Store

RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "detail": self.detail}


def _evidence(image: ImageRecord, *kinds: str) -> EvidenceRecord | None:
    """The newest evidence of these kinds (a scan attached after the build supersedes the build's)."""
    return next((e for e in reversed(image.evidence) if e.kind in kinds), None)


def _read(evidence: EvidenceRecord) -> bytes:
    """The evidence file's bytes, refusing a file that no longer matches the recorded digest."""
    try:
        data = Path(evidence.path).read_bytes()
    except OSError as exc:
        raise KilnError(f"{evidence.kind} file unreadable: {exc.strerror}") from None
    if "sha256:" + hashlib.sha256(data).hexdigest() != evidence.digest:
        raise KilnError(f"{evidence.kind} file does not match its recorded digest {evidence.digest}")
    return data


@dataclass(frozen=True)
class Inputs:
    catalog: Catalog
    image: ImageRecord
    channel: str
    policy: LoadedPolicy
    now: datetime
    store: Store | None = None  # this machine's data directory: logs shipped by other workers


def evaluate(
    catalog: Catalog, image: ImageRecord, channel: str, policy: LoadedPolicy, now: datetime,
    store: Store | None = None,
) -> list[RuleResult]:  # fmt: skip
    if channel not in policy.policy.channels:
        raise KilnError(f"no channel {channel!r}", hint="channels: " + ", ".join(policy.policy.channels))
    rules = policy.policy.for_channel(channel)
    inputs = Inputs(catalog, image, channel, policy, now, store)
    checks: list[tuple[str, bool, Any]] = [
        ("active", rules.active, _active),
        ("tests_passed", rules.tests_passed, _tests_passed),
        ("sbom", rules.sbom, _sbom),
        ("scan", rules.scan is not None, _scan),
        ("compliance", rules.compliance_min is not None, _compliance),
        ("signature", rules.signature is not None, _signature),
        ("parent_channel", rules.parent_channel, _parent_channel),
        ("previous_channel", rules.min_hours_in_previous is not None, _previous),
    ]
    results = []
    for name, wanted, check in checks:
        if not wanted:
            continue
        try:
            passed, detail = check(inputs, rules)
        except KilnError as exc:  # unreadable or tampered evidence: deny, naming why
            passed, detail = False, exc.message
        results.append(RuleResult(name, passed, detail))
    return results


def _active(i: Inputs, _rules: ChannelPolicy) -> tuple[bool, str]:
    return i.image.state == "active", f"image is {i.image.state}"


TEST_PASSED = frozenset({"passed", "success"})  # kiln.verify.phases ends a passing stage "passed"


def _tests_passed(i: Inputs, _rules: ChannelPolicy) -> tuple[bool, str]:
    build = i.catalog.get_build(i.image.build_id)
    log = Path(build.log_path)
    if not log.is_file() and i.store is not None:  # built on another machine: its shipped log
        from kiln.shippedlogs import log_file

        log = log_file(i.store, build)
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return False, f"no build log at {log}: test results unknown"
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        ended = (
            event.get("kind") == "end" and event.get("scope") == "test" and event.get("status") in TEST_PASSED
        )
        cached = str(event.get("message", "")).startswith("test on ") and event.get("status") == "cached"
        if ended or cached:
            return True, str(event.get("message"))
        if event.get("scope") == "test" and event.get("status") == "skipped":  # kiln.build.tests.skip_tests
            who = (event.get("data") or {}).get("requester", "the build request")
            return False, f"the build skipped its test phases (tests disabled by {who}): untested"
    return False, "the build ran no test phase on a fresh instance"


def _sbom(i: Inputs, _rules: ChannelPolicy) -> tuple[bool, str]:
    evidence = _evidence(i.image, "sbom-spdx", "sbom-cyclonedx")
    if evidence is None:
        return False, "no SBOM recorded"
    json.loads(_read(evidence))
    return True, f"{evidence.kind} {evidence.digest}"


def _scan(i: Inputs, rules: ChannelPolicy) -> tuple[bool, str]:
    rule = rules.scan
    assert isinstance(rule, ScanRule)
    evidence = _evidence(i.image, "vulnerability-report")
    if evidence is None:
        return False, "no vulnerability scan recorded"
    report = json.loads(_read(evidence))
    scanned = i.catalog.get_build(i.image.build_id).finished
    if "scanned_at" in report:
        scanned = datetime.fromisoformat(report["scanned_at"])
    if scanned is None:
        return False, "the scan's time is unknown"
    age = i.now - scanned
    if age > timedelta(hours=rule.max_age_hours):
        return False, f"scan is {age.total_seconds() / 3600:.1f} h old (at most {rule.max_age_hours:g} h)"
    imported = [s.get("imported_at") for s in report.get("sources", [])]
    if not imported or any(not isinstance(t, int | float) for t in imported):
        return False, "the scan does not say how old its vulnerability database was"
    db_age = scanned - datetime.fromtimestamp(min(imported), UTC)
    if db_age > timedelta(hours=rule.max_db_age_hours):
        hours = db_age.total_seconds() / 3600
        return (
            False,
            f"vulnerability database was {hours:.1f} h old at the scan (at most {rule.max_db_age_hours:g} h)",
        )
    today = i.now.date()
    blocking, waived, expired = [], [], []
    for finding in report.get("findings", []):
        if RANK.get(finding.get("severity", "unknown"), 0) < RANK[rule.fail_on]:
            continue
        if rule.only_fixable and finding.get("status") != "fixable":
            continue
        waivers = [w for w in rule.waivers if w.cve == finding["vuln_id"]
                   and w.package in (None, finding.get("package"))]  # fmt: skip
        if any(w.expires >= today for w in waivers):
            waived.append(finding["vuln_id"])
        elif waivers:
            expired.append(finding["vuln_id"])
        else:
            blocking.append(finding["vuln_id"])
    if blocking or expired:
        parts = []
        if blocking:
            parts.append(
                f"{len(blocking)} finding(s) ≥ {rule.fail_on}: {', '.join(sorted(set(blocking))[:10])}"
            )
        if expired:
            parts.append(f"expired waiver(s): {', '.join(sorted(set(expired)))}")
        return False, "; ".join(parts)
    return True, f"no finding ≥ {rule.fail_on}" + (f" ({len(waived)} waived)" if waived else "")


def _compliance(i: Inputs, rules: ChannelPolicy) -> tuple[bool, str]:
    evidence = _evidence(i.image, "compliance-results")
    if evidence is None:
        return False, "no compliance results recorded"
    score = json.loads(_read(evidence)).get("score")
    if not isinstance(score, int | float):
        return False, "the compliance results have no score"
    assert rules.compliance_min is not None
    return score >= rules.compliance_min, f"score {score:g} (at least {rules.compliance_min:g})"


def _signature(i: Inputs, rules: ChannelPolicy) -> tuple[bool, str]:
    assert rules.signature is not None
    evidence = _evidence(i.image, "provenance-signed")
    if evidence is None:
        return False, "no signed provenance recorded"
    data = _read(evidence)
    base = i.policy.path.parent if i.policy.path else Path.cwd()
    for key_path in rules.signature.keys:
        key = load_public_key(base / key_path)
        try:
            _, payload = open_envelope(data, key)
        except SignatureInvalid:
            continue
        subjects = json.loads(payload).get("subject", [])
        digests = {f"sha256:{s.get('digest', {}).get('sha256')}" for s in subjects}
        if i.image.digest not in digests:
            return False, "the signed provenance is about another image"
        return True, f"signed by a trusted key ({key_path})"
    return False, "the provenance signature verifies with none of the trusted keys"


def _parent_channel(i: Inputs, _rules: ChannelPolicy) -> tuple[bool, str]:
    if not REF.match(i.image.parent):
        return True, f"external parent {i.image.parent}"
    parent = i.catalog.get_image(i.image.parent)
    order = i.policy.policy.channels
    for channel in order[order.index(i.channel) :]:
        pointer = moves.current(i.catalog, parent.name, channel)
        if pointer is not None and pointer.image == parent.ref:
            return True, f"parent {parent.ref} is in {channel}"
    return False, f"parent {parent.ref} is not in {i.channel} or a later channel"


def _previous(i: Inputs, rules: ChannelPolicy) -> tuple[bool, str]:
    previous = i.policy.policy.previous(i.channel)
    if previous is None:
        return True, f"{i.channel} is the first channel"
    since = moves.entered(i.catalog, i.image.ref, previous)
    if since is None:
        return False, f"never in {previous}"
    hours = (i.now - since).total_seconds() / 3600
    assert rules.min_hours_in_previous is not None
    ok = hours >= rules.min_hours_in_previous
    return ok, f"{hours:.1f} h in {previous} (at least {rules.min_hours_in_previous:g} h)"
