"""``kiln worker``: run queued builds from the PostgreSQL catalog's queue (scale-out; docs/scale-out.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from kiln.cli.common import DataDirOption, console, open_store, settings
from kiln.cli.exitcodes import epilog


def worker_command(
    queue: Annotated[str, typer.Option("--queue", help="Queue family to serve.")] = "builds",
    capability: Annotated[
        str | None,
        typer.Option(
            "--capability",
            help="What this worker offers, e.g. kvm,qemu,arm64,disk>=50G "
            "(default: detected: architecture, qemu, usable KVM, free disk).",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Builds at once.")] = 1,
    stalled_after: Annotated[
        float,
        typer.Option(
            "--stalled-after",
            min=1.0,
            help="Seconds without a worker's heartbeat before its builds are retried elsewhere.",
        ),
    ] = 30.0,
    data_dir: DataDirOption = None,
) -> None:
    """Run queued builds (needs KILN_DATABASE_URL=postgresql://...); SIGTERM or Ctrl-C stops it."""
    from kiln.capabilities import check_queue_base, queues_served, worker_capabilities
    from kiln.errors import UsageError
    from kiln.executors.worker import WorkerConfig, run_worker

    config = settings()
    store = open_store(data_dir)
    if not store.database_url.startswith("postgres"):
        raise UsageError(
            "kiln worker needs a PostgreSQL catalog; this one is SQLite "
            f"({store.database_url.removeprefix('sqlite:///')})",
            hint="set KILN_DATABASE_URL=postgresql://user@host/db (the same for the server and every "
            "worker); with SQLite, kiln serve runs builds itself",
        )
    offer = worker_capabilities(capability, store.home)
    worker = WorkerConfig(
        url=store.database_url,
        settings=config,
        data_dir=store.home,
        queue=check_queue_base(queue),
        offer=offer,
        concurrency=concurrency,
        stalled_after=stalled_after,
    )
    console.print(
        f"worker on queue {queue}: {', '.join(offer.tokens())} "
        f"({len(queues_served(queue, offer))} queues), concurrency {concurrency}"
    )
    run_worker(worker)


def register(app: typer.Typer) -> None:
    app.command("worker", epilog=epilog("worker"))(worker_command)
