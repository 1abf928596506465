"""Entry point: builds the Typer app from the command modules and turns KilnError into exit codes."""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from kiln import __version__
from kiln.cli.common import err_console
from kiln.cli.exitcodes import overview
from kiln.errors import KilnError

app = typer.Typer(
    name="kiln",
    help="Kiln: build, test, scan, sign and catalog golden VM and container images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    epilog=overview(),
)

# Command modules, each exposing `register(app)`, and the top-level commands each provides. Only the
# module of the command being run is imported (start-up stays fast); all of them for help.
COMMAND_MODULES = {
    "kiln.cli.build": ("build",),
    "kiln.cli.validate": ("validate",),
    "kiln.cli.catalog": ("images", "builds"),
    "kiln.cli.schema": ("schema",),
    "kiln.cli.toe": ("toe",),
    "kiln.cli.evidence": ("sbom", "scan", "vulndb", "comply", "keys", "verify"),
    "kiln.cli.instances": ("test",),
    "kiln.cli.gc": ("gc",),
    "kiln.cli.distribute": ("distribute", "distributions", "preflight"),
    "kiln.cli.promote": ("promote", "channels", "promotions"),
    "kiln.cli.serve": ("serve",),
    "kiln.cli.tokens": ("tokens",),
    "kiln.cli.audit": ("audit",),
    "kiln.cli.registry": ("components", "recipes"),
    "kiln.cli.events": ("events", "webhooks"),
    "kiln.cli.worker": ("worker",),
    "kiln.cli.status": ("status",),
    "kiln.cli.diff": ("diff",),
    "kiln.cli.lifecycle": ("lifecycle",),
    "kiln.cli.pipelines": ("pipelines",),
    "kiln.cli.daemon": ("daemon",),
}

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


def _modules_for(argv: list[str]) -> list[str]:
    command = next((a for a in argv if not a.startswith("-")), None)
    wanted = [m for m, commands in COMMAND_MODULES.items() if command in commands]
    return wanted or list(COMMAND_MODULES)


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The app with the command modules ``argv`` needs (all of them when ``argv`` is None)."""
    for name in _modules_for(argv) if argv is not None else COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command group not written yet
                continue
            raise
        module.register(app)
    return app


def _finished() -> None:
    """Exit at once after a successful command: every command closes what it opened (catalog,
    logs, thread pools, mounts) before returning, and tearing down the interpreter's ~700 modules
    costs ~0.3 s, a sixth of a no-op build. Atexit handlers still run."""
    import atexit

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return  # a profiler or coverage writes its data at normal interpreter exit
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    application = build_app(sys.argv[1:])
    try:
        result = application(standalone_mode=False)
        if isinstance(result, int) and result:  # Typer reports Ctrl-C (130) and aborts as a return code
            if result == 130:
                err_console.print("[red]interrupted[/]")
            sys.exit(result)
        _finished()
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
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click): short, exit 2
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"Error: {escape(exc.format_message())}")
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # `kiln images list | head`: the reader has gone, nothing to say
            _silence_stdout()
            sys.exit(1)
        from kiln.diskspace import as_disk_full
        from kiln.settings import Settings

        full = as_disk_full(exc, Settings.from_env().data_dir)
        if full is None or _debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(full.message)}")
        err_console.print(f"[dim]hint:[/] {escape(full.hint or '')}")
        sys.exit(full.exit_code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    main()
