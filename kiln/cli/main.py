"""Entry point: builds the Typer app from the command modules and turns KilnError into exit codes."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Annotated

import typer
from rich.markup import escape

from kiln import __version__
from kiln.cli.common import err_console
from kiln.errors import KilnError

app = typer.Typer(
    name="kiln",
    help="Kiln: build, test, scan, sign and catalog golden VM and container images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, imported when the app is built. Each exposes `register(app)`.
COMMAND_MODULES = (
    "kiln.cli.build",
    "kiln.cli.catalog",
    "kiln.cli.schema",
    "kiln.cli.toe",
    "kiln.cli.evidence",
    "kiln.cli.instances",
)

_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kiln {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    global _debug
    _debug = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s")


def build_app() -> typer.Typer:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command group not written yet
                continue
            raise
        module.register(app)
    return app


def main() -> None:
    application = build_app()
    try:
        result = application(standalone_mode=False)
        if isinstance(result, int) and result:  # Typer reports Ctrl-C (130) and aborts as a return code
            if result == 130:
                err_console.print("[red]interrupted[/]")
            sys.exit(result)
    except KilnError as exc:
        if _debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err_console.print(f"[dim]hint:[/] {escape(exc.hint)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
