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
    from kiln.capabilities import check_queue_base, parse_tokens, queues_served, worker_capabilities
    from kiln.errors import UsageError
    from kiln.executors.worker import WorkerConfig, run_worker

    config = settings()
    url = config.database_url or ""
    if not url.startswith("postgres"):  # checked before anything is created
        raise UsageError(
            "kiln worker needs a PostgreSQL catalog; this one is SQLite"
            + (f" ({url})" if url else " (KILN_DATABASE_URL is not set)"),
            hint="set KILN_DATABASE_URL=postgresql://user@host/db (the same for the server and every "
            "worker); with SQLite, kiln serve runs builds itself",
        )
    check_queue_base(queue)
    if capability is not None:
        parse_tokens(capability)  # a usage error before the data directory is made
    store = open_store(data_dir)
    offer = worker_capabilities(capability, store.home, accel=config.accel)
    worker = WorkerConfig(
        url=store.database_url,
        settings=config,
        data_dir=store.home,
        queue=queue,
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
