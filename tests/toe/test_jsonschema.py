"""The generated JSON Schema accepts every corpus document and rejects what validation rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiln.toe.jsonschema import component_schema
from kiln.toe.quirks import restore_unquoted_expressions
from kiln.yamlsrc import parse_yaml

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = component_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def plain(path: Path) -> Any:
    src = parse_yaml(path)
    return restore_unquoted_expressions(src.locator.root, src.data)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_matches_schema(validator: Any, path: Path) -> None:
    errors = [e.message for e in validator.iter_errors(plain(path))]
    assert errors == []


@pytest.mark.parametrize(
    "doc",
    [
        {"phases": [{"name": "build", "steps": [{"name": "a", "action": "Reboot"}]}]},
        {"schemaVersion": "1.0", "phases": [{"name": "build", "steps": [{"name": "a", "action": "Nope"}]}]},
        {
            "schemaVersion": "1.0",
            "phases": [
                {
                    "name": "build",
                    "steps": [{"name": "a", "action": "CreateFile", "inputs": [{"path": "/x", "mode": "1"}]}],
                }
            ],
        },
        {
            "schemaVersion": "1.0",
            "phases": [
                {
                    "name": "build",
                    "steps": [{"name": "a", "action": "ExecuteBash", "inputs": {"commands": "ls"}}],
                }
            ],
        },
    ],
)
def test_schema_rejects(validator: Any, doc: dict[str, Any]) -> None:
    assert list(validator.iter_errors(doc))
