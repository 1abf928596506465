"""``kiln schema``: JSON Schemas generated from the models (they cannot drift from the code)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import typer

from kiln.cli.exitcodes import epilog
from kiln.recipes.model import Recipe


def _component_schema() -> dict[str, Any]:
    from kiln.toe.jsonschema import component_schema

    return component_schema()


def _build_request_schema() -> dict[str, Any]:
    from kiln.models import BuildRequest

    return BuildRequest.model_json_schema()


def _lifecycle_policy_schema() -> dict[str, Any]:
    from kiln.lifecycle.policy import lifecycle_policy_schema

    return lifecycle_policy_schema()


def _pipeline_schema() -> dict[str, Any]:
    from kiln.pipelines.model import Pipeline

    return Pipeline.model_json_schema()


SchemaKind = Literal["recipe", "component", "build-request", "lifecycle-policy", "pipeline"]
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "recipe": lambda: Recipe.model_json_schema(),
    "component": _component_schema,
    "build-request": _build_request_schema,
    "lifecycle-policy": _lifecycle_policy_schema,
    "pipeline": _pipeline_schema,
}


def register(app: typer.Typer) -> None:
    @app.command("schema", epilog=epilog("schema"))
    def schema_command(
        kind: Annotated[SchemaKind, typer.Argument(help="Which format.")] = "recipe",
    ) -> None:
        """Print the JSON Schema of a Kiln file format."""
        schema = SCHEMAS[kind]()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://kiln.dev/schemas/{kind}.json"
        typer.echo(json.dumps(schema, indent=2, sort_keys=True))
