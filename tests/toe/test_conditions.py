"""Every comparison and logical operator, with AWSTOE's baseline/value order, and file checks in the root."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from kiln.toe.conditions import ConditionError, Evaluator, IfSpec, parse_condition
from kiln.toe.variables import variables_resolver


def holds(raw: dict[str, Any], root: Path = Path("/nonexistent-root")) -> bool:
    return Evaluator(root, variables_resolver({"Env": "Prod", "Count": "7", "Bad": "("}))(
        parse_condition(raw)
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"stringEquals": "prod", "value": "{{ Env }}"}, True),  # case-insensitive
        ({"stringEquals": "prod ", "value": "prod"}, False),  # no trimming
        ({"stringLessThan": "b", "value": "a"}, True),
        ({"stringLessThan": "a", "value": "b"}, False),
        ({"stringLessThanEquals": "A", "value": "a"}, True),
        ({"stringGreaterThan": "a", "value": "B"}, True),
        ({"stringGreaterThanEquals": "b", "value": "b"}, True),
        ({"stringIsEmpty": ""}, True),
        ({"stringIsEmpty": True, "value": "x"}, False),
        ({"stringIsWhitespace": " \t\n"}, True),
        ({"stringIsWhitespace": " x "}, False),
        ({"patternMatches": "^s3://", "value": "s3://bucket/key"}, True),
        ({"patternMatches": "^[0-9]+$", "value": "12a"}, False),
        ({"numberEquals": 7, "value": "{{ Count }}"}, True),
        ({"numberEquals": "7.0", "value": 7}, True),
        ({"numberLessThan": 10, "value": 9.5}, True),
        ({"numberLessThanEquals": 10, "value": 10}, True),
        ({"numberGreaterThan": 10, "value": 10}, False),
        ({"numberGreaterThanEquals": -1, "value": "0"}, True),
        ({"numberEquals": 1, "value": "one"}, False),  # non-numeric: false, not an error
        ({"and": [{"stringEquals": "a", "value": "a"}, {"numberEquals": 1, "value": 1}]}, True),
        (
            {"and": [{"stringEquals": "a", "value": "b"}, {"patternMatches": "{{ Bad }}", "value": "x"}]},
            False,
        ),  # short
        ({"or": [{"stringEquals": "a", "value": "a"}, {"patternMatches": "{{ Bad }}", "value": "x"}]}, True),
        ({"or": [{"stringIsEmpty": "x"}, {"stringIsEmpty": "y"}]}, False),
        ({"not": {"stringIsEmpty": "x"}}, True),
        ({"not": [{"stringIsEmpty": ""}]}, False),
    ],
)
def test_operators(raw: dict[str, Any], expected: bool) -> None:
    assert holds(raw) is expected


def test_bad_pattern_is_an_error() -> None:
    with pytest.raises(ConditionError, match="invalid regular expression"):
        holds({"patternMatches": "{{ Bad }}", "value": "x"})  # known only at run time
    with pytest.raises(ValueError, match="invalid regular expression"):
        parse_condition({"patternMatches": "(", "value": "x"})  # a literal one: when validating


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"stringEquals": "a"}, "needs 'value:'"),
        ({"fileSHA256Equals": "ab"}, "needs 'path:'"),
        ({"stringEquals": "a", "numberEquals": 1, "value": "a"}, "exactly one operator, found 2"),
        ({"and": []}, "non-empty list"),
        ({"not": [{"stringIsEmpty": ""}, {"stringIsEmpty": ""}]}, "exactly one condition"),
        ({"stringEquals": ["a"], "value": "a"}, "must be a single value"),
        ({"and": [{"or": [{"not": {"and": [{"not": {"stringIsEmpty": ""}}]}}]}]}, "at most 4 levels"),
        ({"fileExist": "/x"}, "unknown condition operator(s) fileExist"),
    ],
)
def test_invalid_conditions(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_condition(raw)
    assert message in str(info.value)


def test_file_conditions_look_inside_the_root(tiny_root: Path) -> None:
    (tiny_root / "usr/bin/tool").write_text("#!/bin/sh\n")
    (tiny_root / "usr/bin/tool").chmod(0o755)
    (tiny_root / "usr/bin/data").write_text("not executable")
    (tiny_root / "etc/link").symlink_to("../../../../../etc")  # climbs out, lands on <root>/etc
    data = b"payload\n"
    (tiny_root / "etc/file").write_bytes(data)
    assert holds({"binaryExists": "tool"}, tiny_root)
    assert not holds({"binaryExists": "data"}, tiny_root)
    assert not holds({"binaryExists": "bash"}, tiny_root)  # the host's bash does not count
    assert holds({"fileExists": "/etc/link/file"}, tiny_root)
    assert not holds({"fileExists": "/etc/link/hostname"}, tiny_root)  # host /etc/hostname is never seen
    assert holds({"folderExists": "/usr/bin"}, tiny_root)
    assert not holds({"folderExists": "/etc/file"}, tiny_root)
    for op, algo in (("fileMD5Equals", "md5"), ("fileSHA1Equals", "sha1"), ("fileSHA256Equals", "sha256"),
                     ("fileSHA512Equals", "sha512")):  # fmt: skip
        digest = hashlib.new(algo, data).hexdigest()
        assert holds({op: digest.upper(), "path": "/etc/link/file"}, tiny_root)
        assert not holds({op: digest, "path": "/etc/missing"}, tiny_root)
    host_digest = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    assert not holds({"fileSHA256Equals": host_digest, "path": "../../../../etc/hostname"}, tiny_root)


def test_if_spec_then_else() -> None:
    spec = IfSpec.model_validate({"stringEquals": "a", "value": "b", "then": "Skip", "else": "Abort"})
    assert (spec.then, spec.else_) == ("Skip", "Abort")
    assert spec.condition.operator == "stringEquals"
    default = IfSpec.model_validate({"fileExists": "/x"})
    assert (default.then, default.otherwise) == ("Execute", "Skip")
    guard = IfSpec.model_validate({"fileExists": "/x", "then": "Abort"})
    assert (guard.then, guard.otherwise) == ("Abort", "Execute")
