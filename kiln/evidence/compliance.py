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

from kiln.errors import BuildFailed, CommandFailed, UsageError
from kiln.evidence.datastream import SSG_DIR, Content, choose_content, profiles
from kiln.evidence.facts import EvidenceFile, ImageFacts, store_file
from kiln.evidence.installed import read_os_release
from kiln.evidence.offline import undecidable_rules
from kiln.evidence.settings import PROFILE_PREFIX, ComplianceGate
from kiln.monitor import Monitor
from kiln.sandbox.run import require_tool, run
from kiln.store import Store

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
# OpenSCAP's dpkginfo probe reads packages through libapt with RootDir set to the image root, after
# loading the *host's* apt configuration. A host setting ``Dir::Cache::pkgcache ""`` (Docker's
# docker-clean does) makes apt try to write its cache as the root directory itself: the probe fails
# ("dpkginfo_init has failed", every package reads as absent) and leaves temp files in the root.
# This configuration ignores the host's apt.conf(.d) and names cache files in a directory that does
# not exist in the root, so apt builds its cache in memory and writes nothing into the image.
_PROBE_APT_CONFIG = """\
Dir::Etc::main "/dev/null";
Dir::Etc::parts "/dev/null";
Dir::Cache::pkgcache "/.kiln-no-apt-cache/pkgcache.bin";
Dir::Cache::srcpkgcache "/.kiln-no-apt-cache/srcpkgcache.bin";
"""
APPLICABLE = ("pass", "fail", "error", "unknown")
OVAL_SYSTEM = "http://oval.mitre.org/XMLSchema/oval-definitions-5"
Target = Literal["container", "machine"]


@dataclass
class ComplianceResult:
    profile: str
    target: Target
    content: Content
    counts: dict[str, int]
    rules: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    oscap_counts: dict[str, int] = field(default_factory=dict)  # before runtime-only rules were set aside

    @property
    def applicable(self) -> int:
        return sum(self.counts.get(k, 0) for k in APPLICABLE)

    @property
    def score(self) -> float:
        """Percent of applicable rules that pass, rules only a running system can decide left out."""
        return _percent(self.counts)

    @property
    def oscap_score(self) -> float:
        """The same ratio over oscap's own results (runtime-only rules counted as they came out)."""
        return _percent(self.oscap_counts or self.counts)

    def summary(self) -> dict[str, Any]:
        return {
            "profile": self.profile.removeprefix(PROFILE_PREFIX),
            "target": self.target,
            "score": self.score,
            "applicable": self.applicable,
            "counts": dict(sorted(self.counts.items())),
            "oscap_score": self.oscap_score,
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


def _percent(counts: dict[str, int]) -> float:
    applicable = sum(counts.get(k, 0) for k in APPLICABLE)
    return round(100 * counts.get("pass", 0) / applicable, 1) if applicable else 0.0


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


def parse_arf(arf: Path, titles: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    """The selected rules' results; ``check`` is the OVAL definition a rule was evaluated with."""
    rules = []
    for _, elem in ET.iterparse(arf):
        if elem.tag == f"{XCCDF}rule-result":
            result = elem.findtext(f"{XCCDF}result", default="unknown")
            if result != "notselected":
                rid = elem.get("idref", "")
                title, severity = titles.get(rid, ("", elem.get("severity", "")))
                rule = {"id": rid, "title": title, "severity": severity, "result": result}
                ref = elem.find(f"{XCCDF}check[@system='{OVAL_SYSTEM}']/{XCCDF}check-content-ref")
                if ref is not None and ref.get("name"):
                    rule["check"] = ref.get("name", "")
                rules.append(rule)
            elem.clear()
    return sorted(rules, key=lambda r: r["id"])


def mark_undecidable(rules: list[dict[str, str]], arf: Path, datastream: Path) -> None:
    """Turn failed/unknown results the image alone cannot decide into ``notchecked`` (with the reason)."""
    open_rules = [(r["id"], r["check"]) for r in rules if r["result"] in APPLICABLE[1:] and "check" in r]
    reasons = undecidable_rules(arf, datastream, open_rules)
    for rule in rules:
        if rule["id"] in reasons:
            rule["oscap_result"], rule["result"] = rule["result"], "notchecked"
            rule["reason"] = reasons[rule["id"]]


VIEWS: dict[str, str] = {
    "container": "container view: rules for a machine (partitions, kernel, bootloader) are not applicable",
    "machine": "machine view: every rule of the profile applies, as on a VM or a bare-metal host",
}


def auto_target(has_disk: bool) -> Target:
    """The view ``auto`` means, in a recipe gate and in ``kiln comply`` alike: machine when the image
    boots (a disk output, or a kernel in a root directory), else container."""
    return "machine" if has_disk else "container"


def evaluate(
    rootfs: Path, profile: str, target: Target, work: Path, *, ssg_dir: Path = SSG_DIR, timeout: float = 1800
) -> tuple[ComplianceResult, Path, Path]:
    """Run the profile against ``rootfs``; returns (result, ARF path, HTML report path)."""
    oscap = require_tool("oscap")
    work.mkdir(parents=True, exist_ok=True)
    content = choose_content(read_os_release(rootfs), target, work, ssg_dir)
    titles = rule_titles(content.path)
    profile_id = profile if profile.startswith("xccdf_") else PROFILE_PREFIX + profile
    offered = profiles(content.path)
    if profile_id not in offered:  # before oscap, whose error would name a scratch file
        names = ", ".join(p.removeprefix(PROFILE_PREFIX) for p in offered)
        raise UsageError(f"no profile {profile!r} in {content.source.name}; available profiles: {names}")
    arf, html = work / "arf.xml", work / "report.html"
    root = str(rootfs.absolute())
    apt_config = work / "probe-apt.conf"
    apt_config.write_text(_PROBE_APT_CONFIG)
    env = {
        "APT_CONFIG": str(apt_config),
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
        raise CommandFailed(argv, done.returncode, done.tail)
    rules = parse_arf(arf, titles)
    oscap_counts = Counter(r["result"] for r in rules)
    mark_undecidable(rules, arf, content.path)
    counts = Counter(r["result"] for r in rules)
    warnings = []
    if "dpkginfo_init has failed" in done.stdout + done.stderr:
        warnings.append(
            "OpenSCAP's dpkginfo probe failed to start in offline mode: rules about installed or removed "
            "packages are unreliable in this evaluation (installed packages read as absent)"
        )
    result = ComplianceResult(profile_id, target, content, dict(counts), rules, warnings, dict(oscap_counts))
    return result, arf, html


def compliance_evidence(
    rootfs: Path, facts: ImageFacts, gate: ComplianceGate, store: Store, work: Path, monitor: Monitor
) -> list[EvidenceFile]:
    """Evaluate during a build: store ARF, HTML and JSON results; fail under ``gate.min_score``."""
    target: Target = auto_target(facts.has_disk) if gate.target == "auto" else gate.target
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
