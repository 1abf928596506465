"""``kiln gc``: reclaim what dead builds left (scratch space, image directories never recorded) and what
no image references any more (blobs, layer cache entries, retired images' leftovers)."""

from __future__ import annotations

from typing import Annotated

import typer

from kiln.cli.common import DataDirOption, JsonOption, console, print_json
from kiln.cli.exitcodes import epilog
from kiln.store import Store
from kiln.units import human_size


def register(app: typer.Typer) -> None:
    @app.command("gc", epilog=epilog("gc"))
    def gc_command(
        data_dir: DataDirOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what it would remove.")] = False,
        jobs_older_than: Annotated[
            int,
            typer.Option(
                "--jobs-older-than",
                min=0,
                metavar="HOURS",
                help="PostgreSQL catalog: delete the queue's finished jobs older than this.",
            ),
        ] = 168,
        events_older_than: Annotated[
            int,
            typer.Option(
                "--events-older-than",
                min=0,
                metavar="DAYS",
                help="Delete events older than this (not those a webhook delivery still owes).",
            ),
        ] = 90,
        json_output: JsonOption = False,
    ) -> None:
        """Remove scratch directories of dead Kiln processes, image directories no build recorded, and
        what no image references: store blobs, layer cache entries (a private cache only), leftovers of
        retired images; and events older than --events-older-than days. Reports the bytes freed.

        Live builds are never touched: each holds a lock on its scratch directory and leases its cache
        entries while it runs. On a PostgreSQL catalog it also prunes the build queue's finished jobs.
        """
        from kiln.catalog import Catalog
        from kiln.events.prune import prune_events
        from kiln.executors.prune import is_queue_catalog, prune_jobs
        from kiln.lifecycle.reclaim import collect_garbage

        store = Store.open(data_dir)
        report = collect_garbage(store, dry_run=dry_run)
        queue_jobs = (
            prune_jobs(store.database_url, jobs_older_than, dry_run=dry_run)
            if is_queue_catalog(store.database_url)
            else None
        )
        with Catalog.open(store.database_url) as catalog:
            events = prune_events(catalog, events_older_than, dry_run=dry_run)
        if json_output:
            print_json(
                {
                    "dry_run": dry_run,
                    "queue_jobs": queue_jobs,
                    "events": events,
                    "freed": report.freed,
                    "reclaimed": [
                        {"path": str(i.path), "kind": i.kind, "size": i.size, "reason": i.reason}
                        for i in report.reclaimed
                    ],
                    "kept": [{"path": str(i.path), "kind": i.kind, "reason": i.reason} for i in report.kept],
                }
            )
            return
        verb = "would remove" if dry_run else "removed"
        for item in report.reclaimed:
            console.print(f"{verb} {item.kind:<17} {human_size(item.size):>10}  {item.path} ({item.reason})")
        for item in report.kept:
            console.print(f"kept    {item.kind:<17} {human_size(item.size):>10}  {item.path} ({item.reason})")
        if queue_jobs is not None:
            console.print(f"{'would remove' if dry_run else 'removed'} {queue_jobs} finished queue job(s) "
                          f"older than {jobs_older_than} h")  # fmt: skip
        console.print(f"{verb} {events} event(s) older than {events_older_than} day(s)")
        total = human_size(report.freed)
        console.print(f"{'would free' if dry_run else 'freed'} {total} in {len(report.reclaimed)} item(s)")
