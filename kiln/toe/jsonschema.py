"""JSON Schema of a component document, generated from the same pydantic models that validate it.

Editors use it for completion; it cannot drift from the engine because nothing in it is written by
hand except the glue between the models (``if`` conditions and Assert's expression are described as
free-form objects).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from kiln.toe.actions import Action
from kiln.toe.document_model import ConstantBody, ParameterBody
from kiln.toe.loops import LoopSpec

SCHEMA_ID = "https://kiln.dev/schemas/awstoe-component.json"


def _model(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")


def _any_case(*words: str) -> str:
    """A regex matching any of ``words`` in any letter case (JSON Schema regexes have no (?i))."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)
    return "^(?:" + "|".join(spelled) + ")$"


def _hoist(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Move a sub-schema's ``$defs`` into the document-level ``defs``."""
    defs.update(schema.pop("$defs", {}))
    return schema


def component_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    actions = []
    for name, cls in sorted(Action.registry.items()):
        if cls.windows_only:
            continue
        inputs = _hoist(cls.inputs_schema(), defs)
        actions.append(
            {"if": {"properties": {"action": {"const": name}}}, "then": {"properties": {"inputs": inputs}}}
        )
    named = {"type": "object", "minProperties": 1, "maxProperties": 1, "propertyNames": {
        "pattern": "^[A-Za-z0-9_-]{3,128}$"}}  # fmt: skip
    step = {
        "type": "object",
        "required": ["name", "action"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 128},
            "action": {"enum": sorted(n for n, c in Action.registry.items() if not c.windows_only)},
            "inputs": {},
            "timeoutSeconds": {"type": "integer", "default": 7200, "description": "-1 for no timeout"},
            "onFailure": {
                "type": "string",
                "default": "Abort",
                "description": "Abort, Continue or Ignore (any letter case)",
                "pattern": _any_case("Abort", "Continue", "Ignore"),
            },
            "maxAttempts": {"type": "integer", "minimum": 1, "default": 1},
            "loop": _hoist(_model(LoopSpec), defs),
            "if": {"type": "object", "description": "a comparison or logical expression, then/else"},
        },
        "allOf": actions,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "AWSTOE component document (as accepted by Kiln)",
        "type": "object",
        "required": ["schemaVersion", "phases"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "schemaVersion": {"enum": ["1.0", 1.0, 1]},
            "parameters": {"type": "array", "items": {
                **named, "additionalProperties": _hoist(_model(ParameterBody), defs)}},
            "constants": {"type": "array", "items": {
                **named, "additionalProperties": _hoist(_model(ConstantBody), defs)}},
            "phases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "steps"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "steps": {"type": "array", "minItems": 1, "items": step},
                    },
                },
            },
        },
        "$defs": defs,
    }  # fmt: skip
