"""OpenSCAP compliance of an image root: ``oscap xccdf eval`` in offline (chroot) mode.

Like ``oscap-chroot``: OSCAP_PROBE_ROOT points the probes at the image root, nothing runs inside
it. Results: the ARF XML, the HTML report and a JSON summary with the score (percent of applicable
rules passing) and per-result counts. oscap's exit code 2 means "some rules failed", not an error.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiln.errors import BuildFailed, CommandFailed, KilnError
from kiln.evidence.datastream import SSG_DIR, Content, choose_content
from kiln.evidence.facts import EvidenceFile, ImageFacts
from kiln.evidence.inventory import read_os_release
from kiln.evidence.settings import PROFILE_PREFIX, ComplianceGate
from kiln.monitor import Monitor
from kiln.sandbox.run import require_tool, run
from kiln.store import Store

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
APPLICABLE = ("pass", "fail", "error", "unknown")
Target = Literal["container", "machine"]


@dataclass
class ComplianceResult:
    profile: str
    target: Target
    content: Content
    counts: dict[str, int]
    rules: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def applicable(self) -> int:
        return sum(self.counts.get(k, 0) for k in APPLICABLE)

    @property
    def score(self) -> float:
        """Percent of applicable rules that pass (0 when none apply)."""
        return round(100 * self.counts.get("pass", 0) / self.applicable, 1) if self.applicable else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "profile": self.profile.removeprefix(PROFILE_PREFIX),
            "target": self.target,
            "score": self.score,
            "applicable": self.applicable,
            "counts": dict(sorted(self.counts.items())),
        }

    def to_json(self) -> bytes:
        doc = {
            **self.summary(),
            "profile_id": self.profile,
            "content": {
                "source": str(self.content.source),
                "ssg_version": self.content.ssg_version,
                "adaptations": self.content.adaptations,
            },
            "rules": self.rules,
            "warnings": self.warnings,
        }
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def rule_titles(datastream: Path) -> dict[str, tuple[str, str]]:
    """rule id → (title, severity) from the datastream's XCCDF benchmark."""
    titles: dict[str, tuple[str, str]] = {}
    for _, elem in ET.iterparse(datastream):
        if elem.tag == f"{XCCDF}Rule":
            title = elem.find(f"{XCCDF}title")
            titles[elem.get("id", "")] = (
                (title.text or "") if title is not None else "",
                elem.get("severity", ""),
            )
            elem.clear()
    return titles


def parse_arf(arf: Path, titles: dict[str, tuple[str, str]]) -> tuple[Counter[str], list[dict[str, str]]]:
    counts: Counter[str] = Counter()
    rules = []
    for _, elem in ET.iterparse(arf):
        if elem.tag == f"{XCCDF}rule-result":
            result = elem.findtext(f"{XCCDF}result", default="unknown")
            if result != "notselected":
                rid = elem.get("idref", "")
                title, severity = titles.get(rid, ("", elem.get("severity", "")))
                counts[result] += 1
                rules.append({"id": rid, "title": title, "severity": severity, "result": result})
            elem.clear()
    return counts, sorted(rules, key=lambda r: r["id"])


def evaluate(
    rootfs: Path, profile: str, target: Target, work: Path, *, ssg_dir: Path = SSG_DIR, timeout: float = 1800
) -> tuple[ComplianceResult, Path, Path]:
    """Run the profile against ``rootfs``; returns (result, ARF path, HTML report path)."""
    oscap = require_tool("oscap")
    work.mkdir(parents=True, exist_ok=True)
    content = choose_content(read_os_release(rootfs), target, work, ssg_dir)
    titles = rule_titles(content.path)
    profile_id = profile if profile.startswith("xccdf_") else PROFILE_PREFIX + profile
    arf, html = work / "arf.xml", work / "report.html"
    root = str(rootfs.absolute())
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "OSCAP_PROBE_ROOT": root,
        "OSCAP_EVALUATION_TARGET": f"chroot://{root}",
    }
    argv = [
        oscap,
        "xccdf",
        "eval",
        "--profile",
        profile_id,
        "--results-arf",
        str(arf),
        "--report",
        str(html),
        str(content.path),
    ]
    done = run(argv, env=env, timeout=timeout, check=False)
    if done.returncode not in (0, 2) or not arf.is_file():
        if "No such profile" in done.tail or ("Profile" in done.tail and "not found" in done.tail):
            raise KilnError(
                f"no profile {profile!r} in {content.source.name}",
                hint="profiles: standard, anssi_np_nt28_minimal/average/high/restrictive",
            )
        raise CommandFailed(argv, done.returncode, done.tail)
    counts, rules = parse_arf(arf, titles)
    warnings = []
    if "dpkginfo_init has failed" in done.stdout + done.stderr:
        warnings.append(
            "OpenSCAP's dpkginfo probe failed to start in offline mode: rules about installed or removed "
            "packages are unreliable in this evaluation (installed packages read as absent)"
        )
    return ComplianceResult(profile_id, target, content, dict(counts), rules, warnings), arf, html


def compliance_evidence(
    rootfs: Path, facts: ImageFacts, gate: ComplianceGate, store: Store, work: Path, monitor: Monitor
) -> list[EvidenceFile]:
    """Evaluate during a build: store ARF, HTML and JSON results; fail under ``gate.min_score``."""
    from kiln.evidence.collect import store_file

    target: Target = ("machine" if facts.has_disk else "container") if gate.target == "auto" else gate.target
    with monitor.stage("evidence", f"compliance ({gate.profile}, {target})") as stage:
        scratch = work / "oscap"
        scratch.mkdir()
        result, arf, html = evaluate(rootfs, gate.profile, target, scratch)
        summary = result.summary()
        stage.update(summary)
        for note in result.content.adaptations:
            monitor.info(f"compliance content: {note}")
        for warning in result.warnings:
            monitor.warning(warning)
        files = [
            store_file(store, work, "compliance-arf", arf.read_bytes(), {"profile": summary["profile"]}),
            store_file(store, work, "compliance-report", html.read_bytes(), {"profile": summary["profile"]}),
            store_file(store, work, "compliance-results", result.to_json(), summary),
        ]
    if gate.min_score is not None and result.score < gate.min_score:
        failing = [
            r["id"].removeprefix("xccdf_org.ssgproject.content_rule_")
            for r in result.rules
            if r["result"] in ("fail", "error", "unknown")
        ]
        raise BuildFailed(
            f"compliance gate failed: score {result.score}% < {gate.min_score}% "
            f"({summary['counts'].get('pass', 0)}/{result.applicable} applicable rules pass, profile "
            f"{summary['profile']}, {target} target)\nfailing rules: {', '.join(failing)}\n"
            f"report: {files[1].path}",
            hint="add hardening components (e.g. hardening/cis-*) or lower compliance.min_score",
        )
    return files
