"""Pruning the queue: Procrastinate's finished jobs (and their events), older than a number of hours.

Finished builds keep everything that matters in Kiln's own tables (``builds``, ``build_jobs``,
``build_attempts``); Procrastinate's job rows are only the queue's bookkeeping, and without pruning
``procrastinate_jobs`` and ``procrastinate_events`` grow by one row and about five rows per build
forever. ``kiln gc`` runs this through Procrastinate's own ``delete_old_jobs`` (the query of its builtin
``remove_old_jobs`` task), counting first with the same criteria.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from kiln.catalog import Catalog
from kiln.executors.queue import make_app

FINAL = ["succeeded", "failed", "cancelled", "aborted"]
DEFAULT_HOURS = 168  # a week: recent jobs stay visible to `kiln status` and to debugging

# The selection of Procrastinate's delete_old_jobs query: a job in a final state whose latest event
# is older than the cut-off.
_COUNT = text("""
SELECT count(*) FROM (
    SELECT DISTINCT ON (job.id) job.status, event.at AS latest_at
      FROM procrastinate_jobs job JOIN procrastinate_events event ON job.id = event.job_id
     ORDER BY job.id, event.at DESC
) AS job
WHERE job.status::text = ANY(:statuses) AND latest_at < NOW() - make_interval(hours => :hours)
""")


def is_queue_catalog(url: str) -> bool:
    return url.startswith(("postgresql:", "postgresql+", "postgres:"))


def finished_jobs(catalog: Catalog, hours: int) -> int:
    """How many finished jobs are older than ``hours``."""
    with catalog.engine.connect() as conn:
        return int(conn.execute(_COUNT, {"statuses": FINAL, "hours": hours}).scalar() or 0)


def prune_jobs(url: str, hours: int = DEFAULT_HOURS, *, dry_run: bool = False) -> int:
    """Delete (``dry_run``: count) the finished jobs older than ``hours``; returns how many."""
    with Catalog.open(url) as catalog:
        found = finished_jobs(catalog, hours)
    if dry_run or not found:
        return found

    async def delete() -> None:
        app = make_app(url, asynchronous=True)
        async with app.open_async():
            await app.job_manager.delete_old_jobs(
                nb_hours=hours, include_failed=True, include_cancelled=True, include_aborted=True
            )

    asyncio.run(delete())
    return found
