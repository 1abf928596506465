"""``kiln validate``: check recipes and every component they name, without building anything."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kiln.cli.common import JsonOption, err_console, finish_validation, settings
from kiln.cli.exitcodes import epilog
from kiln.errors import Issue, ValidationFailed


def validate(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe YAML files.")],
    json_output: JsonOption = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings ({{ Undeclared }} names, unused inputs) are errors.")
    ] = False,
) -> None:
    """Validate RECIPES as ``kiln build`` does before it starts; every problem is reported
    (file:line:column: field: message), exit code 2."""
    from kiln.recipes.loader import load_recipe
    from kiln.registry.resolver import data_dir_registry

    issues: list[Issue] = []
    report = []
    config = settings()
    registry = data_dir_registry(config.data_dir.expanduser().absolute(), config)  # for NAME@PATTERN
    with closing(registry):
        for path in recipes:
            try:
                loaded = load_recipe(path, registry=registry)
            except ValidationFailed as exc:
                issues.extend(exc.issues)
                report.append({"path": str(path), "valid": False, "issues": [str(i) for i in exc.issues]})
                continue
            labels = [c.label for c in [*loaded.components, *loaded.tests]]
            warnings = [str(w) for w in loaded.warnings]
            if strict and loaded.warnings:
                issues.extend(loaded.warnings)
                report.append({"path": str(path), "valid": False, "issues": warnings})
                continue
            report.append({"path": str(path), "valid": True, "name": loaded.recipe.name, "components": labels,
                           "warnings": warnings})  # fmt: skip
            if not json_output:
                for warning in warnings:
                    err_console.print(f"[yellow]warning:[/] {escape(warning)}")
                err_console.print(
                    f"[green]valid[/] {path} ({loaded.recipe.name}: {len(labels)} component(s))"
                )
    finish_validation("recipes", report, issues, json_output=json_output)


def register(app: typer.Typer) -> None:
    app.command("validate", epilog=epilog("validate"))(validate)
