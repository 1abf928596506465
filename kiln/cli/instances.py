"""``kiln test``: run test phases again, on demand, against a recorded image version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from kiln.cli.common import DataDirOption, console, open_store, settings
from kiln.cli.exitcodes import epilog


def register(app: typer.Typer) -> None:
    @app.command("test", epilog=epilog("test"))
    def test_command(
        image: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@VERSION/BUILD.")],
        instance: Annotated[
            Literal["container", "vm"] | None,
            typer.Option("--instance", help="container or vm (default: as the image was built)."),
        ] = None,
        documents: Annotated[
            str | None, typer.Option("--documents", help="Extra test documents, comma-separated.")
        ] = None,
        timeout: Annotated[int, typer.Option(help="Seconds a VM test boot may take in all.")] = 900,
        data_dir: DataDirOption = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show step output.")] = False,
    ) -> None:
        """Run the image's test phases (and extra documents) on a fresh container or VM instance."""
        from kiln.cli.common import err_console
        from kiln.cli.progress import progress_monitor
        from kiln.sandbox.namespace import contain_process_tree
        from kiln.verify.retest import retest

        config = settings()
        contain_process_tree(config.private_namespaces)  # qemu and sandboxes die with this command
        monitor = progress_monitor(err_console, verbose=verbose, json_output=False)
        try:
            plan = retest(
                open_store(data_dir), image, monitor=monitor, instance=instance,
                documents=[Path(p) for p in (documents or "").split(",") if p], timeout=timeout,
                accel=config.accel,
            )  # fmt: skip
        finally:
            monitor.close()
        console.print(f"[bold green]tests passed[/] on {plan.ref} ({', '.join(plan.kinds)})")
