"""Which rule results an offline image scan cannot decide.

Kiln scans an image root offline. A few OVAL probes observe only a running system: the mount table
(``partition``) and systemd's unit state over D-Bus (``systemdunitdependency``,
``systemdunitproperty``). Offline, OpenSCAP reports what it sees of nothing: ``partition`` tests come
out false, systemd tests unknown. (For ``sysctl`` OpenSCAP itself already answers "not applicable" and
lets the configuration files decide.)

A rule is *not checked* when its OVAL definition, re-evaluated with those tests as unknown, is unknown:
the image alone cannot decide it. Kiln reports such rules as ``notchecked`` (XCCDF's result for a rule
the checking engine did not evaluate) with the reason, outside the score. A rule that fails on what the
image does show (cron not installed, so "cron enabled" is false whatever runs) still fails.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

OVAL_RES = "{http://oval.mitre.org/XMLSchema/oval-results-5}"
RUNTIME_TESTS = {
    "partition_test": "needs the mounted partitions of a running system",
    "systemdunitdependency_test": "needs systemd's unit state on a running system",
    "systemdunitproperty_test": "needs systemd's unit state on a running system",
}
UNKNOWN = "unknown"


def runtime_tests(datastream: Path) -> dict[str, str]:
    """OVAL test id → why it cannot be evaluated offline, for every runtime-only test in the content."""
    found: dict[str, str] = {}
    for _, elem in ET.iterparse(datastream):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag in RUNTIME_TESTS and elem.get("id"):
            found[elem.get("id", "")] = RUNTIME_TESTS[tag]
        if tag.endswith("_test") or tag.endswith("_object") or tag.endswith("_state"):
            elem.clear()
    return found


def _negate(result: str) -> str:
    return {"true": "false", "false": "true"}.get(result, result)


def _combine(operator: str, results: list[str]) -> str:
    """OVAL's operator tables, reduced to true/false/unknown ("not applicable" children are ignored)."""
    values = [r if r in ("true", "false", "not applicable") else UNKNOWN for r in results]
    values = [v for v in values if v != "not applicable"]
    if not values:
        return "not applicable"
    trues, falses, unknowns = values.count("true"), values.count("false"), values.count(UNKNOWN)
    if operator == "OR":
        return "true" if trues else (UNKNOWN if unknowns else "false")
    if operator in ("ONE", "XOR"):
        if unknowns:
            return UNKNOWN
        return "true" if (trues == 1 if operator == "ONE" else trues % 2 == 1) else "false"
    return "false" if falses else (UNKNOWN if unknowns else "true")  # AND


class _Reevaluation:
    """OVAL results from an ARF, re-evaluated with runtime-only tests as unknown."""

    def __init__(self, arf: Path, runtime: dict[str, str]) -> None:
        self.runtime = runtime
        self.definitions: dict[str, ET.Element] = {}
        for _, elem in ET.iterparse(arf):
            if elem.tag == f"{OVAL_RES}definition" and elem.get("definition_id"):
                self.definitions[elem.get("definition_id", "")] = elem
        self.memo: dict[str, tuple[str, set[str]]] = {}

    def definition(self, def_id: str) -> tuple[str, set[str]]:
        """(re-evaluated result, reasons from runtime-only tests it depends on)."""
        if def_id not in self.memo:
            self.memo[def_id] = (UNKNOWN, set())  # guards against a reference cycle
            elem = self.definitions.get(def_id)
            criteria = elem.find(f"{OVAL_RES}criteria") if elem is not None else None
            self.memo[def_id] = self._node(criteria) if criteria is not None else (UNKNOWN, set())
        return self.memo[def_id]

    def _node(self, node: ET.Element) -> tuple[str, set[str]]:
        tag = node.tag.removeprefix(OVAL_RES)
        if tag == "criterion":
            test = node.get("test_ref", "")
            result, reasons = (
                (UNKNOWN, {self.runtime[test]})
                if test in self.runtime
                else (node.get("result", UNKNOWN), set())
            )
        elif tag == "extend_definition":
            result, reasons = self.definition(node.get("definition_ref", ""))
        else:
            children = [self._node(child) for child in node]
            reasons = set().union(*(r for _, r in children)) if children else set()
            result = _combine(node.get("operator", "AND"), [r for r, _ in children])
        return (_negate(result) if node.get("negate") == "true" else result), reasons


def undecidable_rules(arf: Path, datastream: Path, rule_checks: Iterable[tuple[str, str]]) -> dict[str, str]:
    """rule id → reason, for rules (given with their OVAL definition id) the image alone cannot decide."""
    runtime = runtime_tests(datastream)
    if not runtime:
        return {}
    reevaluated = _Reevaluation(arf, runtime)
    out: dict[str, str] = {}
    for rule_id, def_id in rule_checks:
        result, reasons = reevaluated.definition(def_id)
        if result == UNKNOWN and reasons:
            out[rule_id] = "; ".join(sorted(reasons))
    return out
