"""``kiln audit``: the server's record of mutating calls."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json


def audit_command(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent records.")] = 50,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show recent audit records (who did what, when, from where, with what result), newest first."""
    from kiln.access.audit import entries
    from kiln.catalog import Catalog

    with Catalog.open(open_store(data_dir).database_url) as catalog:
        records = entries(catalog, limit)
    if json_out:
        print_json([r.model_dump(mode="json") for r in records])
        return
    if not records:
        console.print("no audit records yet")
        return
    table = Table("TIME (UTC)", "ACTOR", "ACTION", "TARGET", "FROM", "STATUS", box=None)
    for r in records:
        table.add_row(f"{r.time:%Y-%m-%d %H:%M:%S}", escape(r.actor), escape(r.action),
                      escape(r.target or "-"), r.remote, str(r.status))  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
