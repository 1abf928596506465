"""Three-valued re-evaluation of OVAL criteria with runtime-only tests as unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.evidence.offline import _combine, undecidable_rules

RES = "http://oval.mitre.org/XMLSchema/oval-results-5"
DEF = "http://oval.mitre.org/XMLSchema/oval-definitions-5"


@pytest.mark.parametrize(
    ("operator", "results", "expected"),
    [
        ("AND", ["true", "unknown"], "unknown"),
        ("AND", ["false", "unknown"], "false"),
        ("AND", ["true", "not applicable"], "true"),
        ("OR", ["false", "unknown"], "unknown"),
        ("OR", ["true", "unknown"], "true"),
        ("OR", ["false", "error"], "unknown"),
        ("ONE", ["true", "false"], "true"),
        ("ONE", ["true", "true"], "false"),
        ("XOR", ["true", "true", "true"], "true"),
        ("ONE", ["true", "unknown"], "unknown"),
        ("AND", ["not applicable"], "not applicable"),
    ],
)
def test_operator_tables(operator: str, results: list[str], expected: str) -> None:
    assert _combine(operator, results) == expected


def test_undecidable_rules(tmp_path: Path) -> None:
    content = tmp_path / "ds.xml"
    content.write_text(
        f'<ds xmlns:linux="{DEF}#linux" xmlns:ind="{DEF}#independent">'
        '<linux:partition_test id="t:part"/><linux:systemdunitdependency_test id="t:unit"/>'
        '<linux:dpkginfo_test id="t:pkg"/><ind:textfilecontent54_test id="t:file"/></ds>'
    )
    arf = tmp_path / "arf.xml"
    arf.write_text(
        f'<arf><oval_results xmlns="{RES}"><results><system><definitions>'
        # a mount: only a running system can say
        '<definition definition_id="d:part" result="false"><criteria operator="AND">'
        '<criterion test_ref="t:part" result="false"/></criteria></definition>'
        # package installed AND unit wanted: undecided while the package is there...
        '<definition definition_id="d:svc" result="unknown"><criteria operator="AND">'
        '<criterion test_ref="t:pkg" result="true"/><extend_definition definition_ref="d:unit" result="unknown"/>'
        "</criteria></definition>"
        '<definition definition_id="d:unit" result="unknown"><criteria operator="OR">'
        '<criterion test_ref="t:unit" result="unknown"/></criteria></definition>'
        # ...but false when it is not installed
        '<definition definition_id="d:svc-missing" result="false"><criteria operator="AND">'
        '<criterion test_ref="t:pkg" result="false"/><extend_definition definition_ref="d:unit" result="unknown"/>'
        "</criteria></definition>"
        # negated runtime test OR a file setting that holds: decided by the file
        '<definition definition_id="d:either" result="true"><criteria operator="OR">'
        '<criterion test_ref="t:part" negate="true" result="true"/><criterion test_ref="t:file" result="true"/>'
        "</criteria></definition>"
        # a plain file rule that failed
        '<definition definition_id="d:file" result="false"><criteria>'
        '<criterion test_ref="t:file" result="false"/></criteria></definition>'
        "</definitions></system></results></oval_results></arf>"
    )
    rules = [("r:part", "d:part"), ("r:svc", "d:svc"), ("r:svc-missing", "d:svc-missing"),
             ("r:either", "d:either"), ("r:file", "d:file"), ("r:nodef", "d:absent")]  # fmt: skip
    assert undecidable_rules(arf, content, rules) == {
        "r:part": "needs the mounted partitions of a running system",
        "r:svc": "needs systemd's unit state on a running system",
    }
