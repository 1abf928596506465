"""The evidence box: everything that proves what an image is, written into the store's blobs.

The build calls :func:`root_evidence` once the image's root filesystem and artifacts exist and
:func:`provenance_evidence` after the tests passed (before the catalog is written). A failed gate
raises BuildFailed: the build records nothing, but the reports stay in the blob store and the error
names them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from kiln.cachestore import KeyedCache
from kiln.errors import BuildFailed, KilnError
from kiln.evidence.compliance import compliance_evidence
from kiln.evidence.facts import (
    ComponentFact,
    EvidenceFile,
    EvidenceSettings,
    ImageFacts,
    store_file,
)
from kiln.evidence.gates import evaluate, openvex
from kiln.evidence.installed import read_inventory
from kiln.evidence.provenance import statement_bytes
from kiln.evidence.sbom import ImageIdentity, ParentIdentity, cyclonedx_json, spdx_json
from kiln.evidence.signing import load_private_key, sign_envelope
from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnscan import scan_root
from kiln.models import Evidence
from kiln.monitor import Monitor
from kiln.store import Store

__all__ = [
    "ComponentFact",
    "EvidenceFile",
    "EvidenceSettings",
    "ImageFacts",
    "collect_evidence",
    "provenance_evidence",
    "root_evidence",
]


def _memo(store: Store) -> KeyedCache:
    """Evidence made before, by key: a memo is complete when every blob it names is still stored."""
    return KeyedCache(
        store.home / "evidence-cache", requires=lambda _, meta: [Path(d["path"]) for d in meta["files"]]
    )


def _memo_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _reuse(store: Store, key: str) -> list[EvidenceFile] | None:
    """Evidence made before for the same image digest (SBOMs are a function of the image alone)."""
    entry = _memo(store).get(_memo_key(key))
    if entry is None:
        return None
    return [EvidenceFile(d["kind"], Path(d["path"]), d["digest"], d["media_type"], d["summary"])
            for d in entry["files"]]  # fmt: skip


def _remember(store: Store, key: str, files: list[EvidenceFile]) -> None:
    records = [{"kind": f.kind, "path": str(f.path), "digest": f.digest, "media_type": f.media_type,
                "summary": f.summary} for f in files]  # fmt: skip
    _memo(store).commit(_memo_key(key), {"files": records})


def collect_evidence(
    rootfs: Path, facts: ImageFacts, settings: EvidenceSettings, store: Store, monitor: Monitor
) -> list[EvidenceFile]:
    """SBOMs, scan report (+ gate), compliance (+ gate), then the provenance over all of them."""
    files = root_evidence(rootfs, facts, settings, store, monitor)
    return [*files, provenance_evidence(facts, files, settings, store, monitor)]


def root_evidence(
    rootfs: Path, facts: ImageFacts, settings: EvidenceSettings, store: Store, monitor: Monitor
) -> list[EvidenceFile]:
    """What is read off the image's root: SBOMs, scan report (+ gate), compliance (+ gate)."""
    files: list[EvidenceFile] = []
    parent = (
        ParentIdentity.from_ref(facts.parent_ref, facts.parent_digest)
        if facts.parent_ref and facts.parent_digest
        else None
    )
    image = ImageIdentity(facts.name, facts.version, facts.digest, facts.created, parent)
    with store.scratch("evidence-") as work, monitor.stage("evidence", "evidence") as summary:
        if settings.sbom:
            with monitor.stage("evidence", "SBOM (SPDX 2.3, CycloneDX 1.6)") as result:
                key = f"sbom-{facts.digest}-{image}"
                sboms = _reuse(store, key)
                if sboms is None:
                    inventory = read_inventory(rootfs)
                    counts = {"packages": len(inventory.debs), "python": len(inventory.python)}
                    sboms = [
                        store_file(store, work, "sbom-spdx", spdx_json(inventory, image), counts),
                        store_file(store, work, "sbom-cyclonedx", cyclonedx_json(inventory, image), counts),
                    ]
                    _remember(store, key, sboms)
                else:
                    result["status"] = "cached"
                files += sboms
                result.update(sboms[0].summary)
        files += _scan(rootfs, facts, settings, store, work, monitor)
        if settings.compliance is not None:
            files += compliance_evidence(rootfs, facts, settings.compliance, store, work, monitor)
        summary.update(evidence_summary(files))
    return files


def provenance_evidence(
    facts: ImageFacts, files: list[EvidenceFile], settings: EvidenceSettings, store: Store, monitor: Monitor
) -> EvidenceFile:
    """The in-toto/SLSA provenance over the image, its artifacts and ``files``; signed when a key is set.
    A build makes it last, once the tests passed: a failing build leaves no signed statement."""
    with (
        store.scratch("provenance-") as work,
        monitor.stage("evidence", "provenance (in-toto, SLSA v1)") as result,
    ):
        payload = statement_bytes(facts, files)
        result["signed"] = settings.signing_key is not None
        # the catalog keeps the summary: `kiln images show` says an image went untested, and why
        tests = {"tests": f"skipped ({facts.tests_skipped})"} if facts.tests_skipped else {}
        if settings.signing_key is not None:
            envelope = sign_envelope(payload, load_private_key(settings.signing_key))
            return store_file(store, work, "provenance-signed", envelope, {"signature": "signed", **tests})
        monitor.warning("provenance is not signed: no signing key configured (recipe 'signing.key')")
        return store_file(store, work, "provenance", payload, {"signature": "unsigned", **tests})


def _scan(
    rootfs: Path, facts: ImageFacts, settings: EvidenceSettings, store: Store, work: Path, monitor: Monitor
) -> list[EvidenceFile]:
    db = VulnDb.open(store)
    if not db.sources():
        if settings.scan is not None and settings.scan.fail_on is not None:
            raise BuildFailed(
                "the recipe gates on vulnerabilities but the vulnerability database is empty",
                hint="import a feed first: kiln vulndb import https://security-tracker.debian.org/tracker/data/json",
            )
        monitor.warning(
            "vulnerability scan skipped: the vulnerability database is empty (kiln vulndb import)"
        )
        return []
    gate = settings.scan
    today = facts.finished.date()
    with monitor.stage("evidence", "vulnerability scan") as result:
        try:
            report = scan_root(rootfs, db, image=f"{facts.name}@{facts.version}")
        except KilnError as exc:
            if gate is None:
                monitor.warning(f"vulnerability scan skipped: {exc.message}")
                return []
            raise
        summary = report.summary()
        files: list[EvidenceFile] = []
        if gate is not None and gate.allow:
            product = f"pkg:oci/{facts.name}@{facts.digest}"
            vex = openvex(gate, report, product, facts.finished, today)
            files.append(
                store_file(store, work, "vex", vex, {"statements": len(json.loads(vex)["statements"])})
            )
        outcome = evaluate(report, gate, today) if gate is not None else None
        if outcome is not None:
            summary |= {
                "gate": "passed" if outcome.passed else "failed",
                "suppressed": len(outcome.suppressed),
            }
        result.update(summary)
        files.insert(0, store_file(store, work, "vulnerability-report", report.to_json(), summary))
        if gate is None or outcome is None:
            return files
        for entry in outcome.expired:
            monitor.warning(f"allow-list entry {entry.cve} expired on {entry.expires}: no longer suppressed")
        if not outcome.passed:
            raise BuildFailed(
                outcome.message(gate) + f"\nfull report: {files[0].path}",
                hint="update the packages (rebuild with an update component) or allow-list the CVEs "
                "with a reason and an expiry date in the recipe's scan.allow",
            )
    return files


def evidence_summary(files: Sequence[EvidenceFile | Evidence]) -> dict[str, object]:
    """The short human summary: package count, vulnerabilities by severity (and the gate's verdict),
    compliance score and profile, signature."""
    out: dict[str, object] = {}
    for f in files:
        if f.kind == "sbom-spdx":
            out["packages"] = f.summary.get("packages")
        elif f.kind == "vulnerability-report":
            out["vulnerabilities"] = f.summary.get("by_severity", {})
            if "gate" in f.summary:
                out["gate"] = f.summary["gate"]
        elif f.kind == "compliance-results":
            out["compliance_score"] = f.summary.get("score")
            out["profile"] = f.summary.get("profile", "")
            out["view"] = f.summary.get("target", "")
        elif f.kind.startswith("provenance"):
            out["signature"] = f.summary.get("signature")
    return out
