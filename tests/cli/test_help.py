"""Every command's ``--help`` renders (Rich markup in a help text, e.g. ``[/n]``, used to crash it)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from kiln.cli.main import build_app
from tests.cli.test_usage import command_paths


def test_every_help_renders() -> None:
    app = build_app()
    paths = sorted(command_paths(typer.main.get_command(app)))
    assert ("diff",) in paths and ("images", "label") in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, f"kiln {' '.join(path)} --help: {result.exception!r}"
        assert "Usage:" in result.output
