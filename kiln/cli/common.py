"""Helpers shared by command modules: the data dir option, JSON output, error display."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType

from kiln.errors import Issue, ValidationFailed
from kiln.settings import Settings
from kiln.store import Store

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="KILN_HOME", help="Data directory (default ~/.local/share/kiln)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


PIPE_WIDTH = 1_000_000  # piped output: a line as long as its content, never cut or wrapped at 80 columns


def show(renderable: RenderableType) -> None:
    """Print a table on stdout; when stdout is not a terminal (``| cat``, CI logs), rows are plain
    space-separated lines as wide as their content, without the edge padding (Rich would otherwise cut
    them at 80 columns)."""
    if console.is_terminal:
        console.print(renderable)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=PIPE_WIDTH, highlight=False, color_system=None).print(renderable)
    text = textwrap.dedent(buffer.getvalue())
    typer.echo("\n".join(line.rstrip() for line in text.splitlines()))


def settings() -> Settings:
    """The settings from the environment (kiln.settings is the one place that reads it)."""
    return Settings.from_env()


def open_store(data_dir: Path | None) -> Store:
    """The data directory, after reclaiming what dead Kiln processes left in it."""
    from kiln.lifecycle.reclaim import reclaim_dead_scratch

    store = Store.open(data_dir, settings())
    reclaim_dead_scratch(store)
    return store


def print_json(value: Any) -> None:
    """Stable JSON on stdout (sorted keys, ISO times)."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def finish_validation(
    kind: str, report: list[dict[str, Any]], issues: list[Issue], *, json_output: bool
) -> None:
    """End a validate command: the JSON report (exit 2 when anything is invalid), else the issues."""
    if json_output:
        print_json({kind: report, "valid": not issues})
        if issues:
            raise typer.Exit(2)
        return
    if issues:
        raise ValidationFailed(issues)
