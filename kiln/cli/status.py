"""``kiln status``: build workers and queue depth (PostgreSQL catalogs; docs/scale-out.md)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from kiln.cli.common import JsonOption, console, print_json, settings, show
from kiln.cli.exitcodes import epilog


def status_command(json_out: JsonOption = False) -> None:
    """Show the build workers (host, capabilities, current build, last heartbeat) and jobs per queue."""
    from kiln.errors import UsageError
    from kiln.executors.status import queue_status

    url = settings().database_url or ""
    if not url.startswith("postgres"):
        raise UsageError(
            "kiln status shows the build queue of a PostgreSQL catalog; this one is SQLite "
            "(builds run in the process that starts them)",
            hint="see: kiln builds list",
        )
    status = queue_status(url)
    if json_out:
        print_json(status.model_dump(mode="json"))
        return
    workers = Table("HOST", "PID", "QUEUE", "CAPABILITIES", "BUILD", "LAST SEEN (UTC)", box=None)
    for w in status.workers:
        workers.add_row(
            escape(w.host),
            str(w.pid),
            w.queue,
            ", ".join(w.capabilities),
            (w.current_build or "-")[:12],
            w.last_seen.strftime("%H:%M:%S"),
        )
    if status.workers:
        show(workers)
    else:
        console.print("no live workers (start one: kiln worker)")
    queues = Table("QUEUE", "WAITING", "RUNNING", box=None)
    for q in status.queues:
        queues.add_row(q.name, str(q.todo), str(q.doing))
    if status.queues:
        show(queues)
    else:
        console.print("no queued builds")


def register(app: typer.Typer) -> None:
    app.command("status", epilog=epilog("status"))(status_command)
