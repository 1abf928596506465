"""``kiln events`` (the event stream) and ``kiln webhooks`` (where events are sent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json, show
from kiln.cli.exitcodes import epilog

if TYPE_CHECKING:
    from kiln.catalog import Catalog
    from kiln.events.model import Event

TypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type", "-t", help="Only these event types (globs, e.g. 'build.*', 'dev.kiln.cve.found')."
    ),
]


def _catalog(data_dir: Path | None) -> Catalog:
    from kiln.catalog import Catalog

    return Catalog.open(open_store(data_dir).database_url)


def _line(event: Event, json_out: bool) -> str:
    if json_out:
        return json.dumps(event.envelope(), sort_keys=True)
    summary = " ".join(f"{k}={v}" for k, v in event.data.items() if v not in (None, "", {}, []))
    kind = event.type.removeprefix("dev.kiln.")
    return f"{event.time:%Y-%m-%d %H:%M:%S} {kind} {event.subject or '-'} {summary}"


def events_command(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events as they happen.")
    ] = False,
    types: TypeOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events since this: 30m, 2h, 7d or an ISO 8601 time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent events first.")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="One CloudEvents JSON object per line.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Show recent events (builds, images, pipelines, CVEs), oldest first; --follow streams new ones."""
    from kiln.events.stream import follow as follow_events
    from kiln.events.stream import last_id, parse_since, recent

    start = parse_since(since) if since else None
    with _catalog(data_dir) as catalog:
        cursor = last_id(catalog) if follow else 0
        shown = recent(catalog, since=start, types=types, limit=limit)
        for _, event in shown:
            typer.echo(_line(event, json_out))
        if not follow:
            if not shown and not json_out:
                console.print("no events yet", style="dim")
            return
        sys.stdout.flush()
        for _, event in follow_events(catalog, after=cursor, types=types):
            typer.echo(_line(event, json_out))
            sys.stdout.flush()


def add_command(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the events (POST).")],
    secret_env: Annotated[
        str | None, typer.Option("--secret-env", help="Variable holding the signing secret (whsec_…).")
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option("--secret-file", help="File holding the signing secret (whsec_…).")
    ] = None,
    types: TypeOption = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline's events.")] = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow loopback, private and link-local addresses.")
    ] = False,
    json_out: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Send events to URL, signed with the secret (only the variable's name or the file's path is stored)."""
    from pydantic import ValidationError

    from kiln.errors import UsageError
    from kiln.events.webhooks import SecretRef, WebhookConfig, add

    if (secret_env is None) == (secret_file is None):
        raise UsageError("give exactly one of --secret-env VAR and --secret-file FILE")
    ref = f"env:{secret_env}" if secret_env else f"file:{Path(str(secret_file)).expanduser().absolute()}"
    try:
        config = WebhookConfig(
            url=url,
            secret=SecretRef.parse(ref),
            types=types or [],
            pipeline=pipeline,
            allow_private=allow_private,
        )
    except ValidationError as exc:
        raise UsageError("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    with _catalog(data_dir) as catalog:
        hook = add(catalog, config)
    if json_out:
        print_json(hook.model_dump(mode="json"))
    else:
        console.print(
            f"webhook {hook.id} added: {escape(hook.url)} ({', '.join(hook.types) or 'every event'})"
        )


def list_command(json_out: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Configured webhooks (secrets shown as their reference only)."""
    from kiln.events.webhooks import listing

    with _catalog(data_dir) as catalog:
        hooks = listing(catalog)
    if json_out:
        print_json([h.model_dump(mode="json") for h in hooks])
        return
    if not hooks:
        console.print("no webhooks: kiln webhooks add URL --secret-env VAR")
        return
    table = Table("ID", "URL", "TYPES", "PIPELINE", "SECRET", "PRIVATE", box=None)
    for h in hooks:
        table.add_row(
            str(h.id),
            escape(h.url),
            ", ".join(h.types) or "*",
            h.pipeline or "-",
            escape(h.secret),
            "yes" if h.allow_private else "no",
        )
    show(table)


def remove_command(
    webhook_id: Annotated[int, typer.Argument(help="Webhook id (kiln webhooks list).")],
    data_dir: DataDirOption = None,
) -> None:
    """Remove a webhook and its delivery log."""
    from kiln.events.webhooks import remove

    with _catalog(data_dir) as catalog:
        remove(catalog, webhook_id)
    console.print(f"webhook {webhook_id} removed")


def deliveries_command(
    failed: Annotated[bool, typer.Option("--failed", help="Only deliveries with failed attempts.")] = False,
    webhook: Annotated[int | None, typer.Option("--webhook", help="Only this webhook's.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="JSON, with every attempt.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """The delivery log: each event sent (or owed) to a webhook, its attempts and outcome."""
    from kiln.events.deliveries import listing

    with _catalog(data_dir) as catalog:
        rows = listing(catalog, failed=failed, webhook_id=webhook, limit=limit, with_log=json_out)
    if json_out:
        print_json([d.model_dump(mode="json") for d in rows])
        return
    if not rows:
        console.print("no deliveries")
        return
    table = Table("ID", "HOOK", "EVENT", "STATUS", "ATTEMPTS", "LAST", "NEXT (UTC)", box=None)
    for d in rows:
        last = d.last_error or (str(d.last_status) if d.last_status else "-")
        nxt = f"{d.next_attempt:%Y-%m-%d %H:%M:%S}" if d.next_attempt else "-"
        table.add_row(
            str(d.id),
            str(d.webhook_id),
            d.event_type.removeprefix("dev.kiln."),
            d.status,
            str(d.attempts),
            escape(last),
            nxt,
        )
    show(table)


def redeliver_command(
    delivery_id: Annotated[int, typer.Argument(help="Delivery id (kiln webhooks deliveries).")],
    data_dir: DataDirOption = None,
) -> None:
    """Send a delivery's event to its webhook again (a new delivery; the dispatcher sends it)."""
    from kiln.events.deliveries import redeliver

    with _catalog(data_dir) as catalog:
        new = redeliver(catalog, delivery_id)
    console.print(f"delivery {new} queued (redelivery of {delivery_id})")


def dispatch_command(
    once: Annotated[bool, typer.Option("--once", help="Attempt what is due now, then exit.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Run the webhook dispatcher in the foreground (kiln serve and the daemon also run one)."""
    import threading

    from kiln.events.dispatch import Dispatcher

    with _catalog(data_dir) as catalog:
        dispatcher = Dispatcher(catalog)
        if once:
            console.print(f"{dispatcher.run_once()} deliveries attempted")
            return
        dispatcher.run(threading.Event())


def new_secret_command() -> None:
    """Print a new random signing secret (Standard Webhooks format, whsec_…)."""
    from kiln.events.signing import new_secret

    typer.echo(new_secret())


def register(app: typer.Typer) -> None:
    app.command("events", epilog=epilog("events"))(events_command)
    hooks = typer.Typer(
        help="Webhooks: events sent as signed CloudEvents.", no_args_is_help=True, epilog=epilog("webhooks")
    )
    hooks.command("add")(add_command)
    hooks.command("list")(list_command)
    hooks.command("remove")(remove_command)
    hooks.command("deliveries")(deliveries_command)
    hooks.command("redeliver")(redeliver_command)
    hooks.command("dispatch")(dispatch_command)
    hooks.command("new-secret")(new_secret_command)
    app.add_typer(hooks, name="webhooks")
