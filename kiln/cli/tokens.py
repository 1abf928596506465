"""``kiln tokens create/list/revoke``: API tokens of this data directory's server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.catalog import Catalog
from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json
from kiln.store import Store


@contextmanager
def _opened(data_dir: Path | None) -> Iterator[tuple[Store, Catalog]]:
    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        yield store, catalog


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def create(
    name: Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="images:read, builds:write, admin, ... (repeatable).")
    ],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 90d, 12h, 30m, 2w (default: never).")
    ] = None,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images", help="Only images whose name matches: 'team-a-*' (repeatable; default all)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create an API token; it is printed once and only its HMAC is stored."""
    from kiln.access.secret import server_secret
    from kiln.access.tokens import create_token, parse_duration

    lifetime = parse_duration(expires) if expires else None
    with _opened(data_dir) as (store, catalog):
        token, info = create_token(catalog, server_secret(store.home), name, scope, lifetime, images=images)
    if json_out:
        print_json({"token": token, **info.model_dump(mode="json")})
        return
    typer.echo(token)
    err_console.print(
        f"token {escape(info.name)} ({info.id}): {', '.join(info.scopes)}; expires {_when(info.expires)}"
        " — copy it now, it is not shown again"
    )


def list_command(data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """List tokens (never their secrets) with scopes, expiry, revocation and last use."""
    from kiln.access.tokens import list_tokens

    with _opened(data_dir) as (_, catalog):
        tokens = list_tokens(catalog)
    if json_out:
        print_json([t.model_dump(mode="json") for t in tokens])
        return
    if not tokens:
        console.print("no API tokens; create one with: kiln tokens create NAME --scope images:read")
        return
    table = Table("ID", "NAME", "SCOPES", "IMAGES", "CREATED", "EXPIRES", "REVOKED", "LAST USED", box=None)
    for t in tokens:
        table.add_row(t.id, escape(t.name), " ".join(t.scopes), escape(" ".join(t.images or ["*"])),
                      _when(t.created), _when(t.expires),
                      _when(t.revoked), _when(t.last_used))  # fmt: skip
    console.print(table)


def revoke(
    token: Annotated[str, typer.Argument(help="Token id or name.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a token: the server refuses it from now on."""
    from kiln.access.tokens import revoke_token

    with _opened(data_dir) as (_, catalog):
        info = revoke_token(catalog, token)
    console.print(f"revoked {escape(info.name)} ({info.id})")


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="API tokens for kiln serve.", no_args_is_help=True)
    tokens.command("create")(create)
    tokens.command("list")(list_command)
    tokens.command("revoke")(revoke)
    app.add_typer(tokens, name="tokens")
