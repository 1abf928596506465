"""``kiln daemon``: the scheduler, the executor and the webhook dispatcher in the foreground
(systemd-friendly)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from contextlib import nullcontext
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Literal

import typer

from kiln.cli.common import DataDirOption, open_store, settings
from kiln.cli.exitcodes import epilog
from kiln.errors import KilnError, UsageError


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def _logging(fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    for name in ("kiln.daemon", "kiln.pipelines"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def daemon(
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Builds at once.")] = 1,
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate triggers once, build what is due, exit.")
    ] = False,
    log_format: Annotated[
        Literal["text", "json"], typer.Option("--log-format", help="Log lines on stderr.")
    ] = "text",
    no_webhooks: Annotated[
        bool, typer.Option("--no-webhooks", help="Do not deliver webhooks from this process.")
    ] = False,
    vulndb_source: Annotated[
        str | None,
        typer.Option(
            "--vulndb-source",
            metavar="URL|PATH",
            help="Import this vulnerability feed (as kiln vulndb import) when it changed, every "
            "--vulndb-every; a URL is fetched conditionally (ETag, Last-Modified).",
        ),
    ] = None,
    vulndb_every: Annotated[
        str | None,
        typer.Option(
            "--vulndb-every",
            metavar="INTERVAL",
            help="How often to look at --vulndb-source: 30m, 6h, 1d [6h].",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run pipelines: schedules, parent, component and cve triggers, cascades, manual runs (and
    deliver webhooks, unless --no-webhooks; import a vulnerability feed, with --vulndb-source).
    SIGTERM: finish running builds and releases and exit; a second SIGTERM cancels them."""
    from kiln.catalog import Catalog
    from kiln.events.dispatch import hosted
    from kiln.executors.base import executor_for
    from kiln.pipelines.builds import BuildRunner
    from kiln.pipelines.checks import ArchiveUpdates, CatalogChanges
    from kiln.pipelines.clock import system_clock
    from kiln.pipelines.cvetrigger import CveTrigger
    from kiln.pipelines.daemon import Daemon, single_daemon
    from kiln.pipelines.recipes import PipelineRecipes
    from kiln.pipelines.release import Release
    from kiln.pipelines.scheduler import Scheduler
    from kiln.pipelines.store import PipelineStore
    from kiln.pipelines.vulnfeed import VulnFeed, parse_every

    if vulndb_every is not None and vulndb_source is None:
        raise UsageError(
            "--vulndb-every needs --vulndb-source", hint="e.g. --vulndb-source URL --vulndb-every 6h"
        )
    try:
        every = parse_every(vulndb_every or "6h")
    except KilnError as exc:
        raise UsageError(f"--vulndb-every: {exc.message}", hint=exc.hint) from None
    _logging(log_format)
    config = settings()
    store = open_store(data_dir)
    catalog = Catalog.open(store.database_url)
    wake = threading.Event()
    try:
        with single_daemon(store.home), nullcontext() if no_webhooks else hosted(store.home, config):
            pipelines = PipelineStore(catalog)
            recipes = PipelineRecipes(catalog)
            runner = BuildRunner(store, config, catalog, executor_for(store, config))
            worker = Daemon(
                pipelines,
                runner,
                Scheduler(
                    pipelines,
                    CatalogChanges(catalog, ArchiveUpdates(store, catalog)),
                    recipes,
                    cve=CveTrigger(store, catalog),
                ),
                recipes,
                store.home,
                system_clock,
                workers,
                Release(store, catalog, config, os.environ),
            )

            if vulndb_source is not None:
                worker.feed = VulnFeed(store, catalog, vulndb_source, every)

            def _stop(signum: int, _frame: FrameType | None) -> None:
                worker.stop()
                wake.set()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            logging.getLogger("kiln.daemon").info(
                "kiln daemon started (pid %d, %d worker(s))", os.getpid(), workers
            )
            code = worker.once(wake) if once else worker.serve(wake)
            left = worker.cancelling and (worker.releases.busy() or worker.feeds.busy())
    finally:
        catalog.close()
    if left:
        # told twice to stop: work left in background threads is not waited for, also not a
        # library's own worker threads (an S3 multipart upload's), which interpreter exit would join
        logging.shutdown()
        os._exit(code)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("daemon", epilog=epilog("daemon"))(daemon)
