"""``kiln gc`` on a PostgreSQL catalog prunes Procrastinate's finished jobs (Procrastinate's own
delete_old_jobs), never a waiting one, and the builds stay recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import text

from kiln.catalog import Catalog
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildRequest
from kiln.settings import Settings
from tests.executors.test_queue import KILN, MOTD, env_for, recipe


def jobs_by_status(url: str) -> dict[str, int]:
    with Catalog.open(url) as catalog, catalog.engine.connect() as conn:
        rows = conn.execute(text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1"))
        return {str(status): int(count) for status, count in rows}


def gc(url: str, home: Path, *args: str) -> dict[str, object]:
    run = subprocess.run([str(KILN), "gc", "--json", *args], env=env_for(url, home),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report: dict[str, object] = json.loads(run.stdout)
    return report


def test_gc_prunes_finished_queue_jobs(queue_url: str, tmp_path: Path) -> None:
    executor = QueueExecutor(queue_url, Settings())
    ids = []
    for name in ("pruned-a", "pruned-b", "waits"):  # arm64: no worker here runs them
        source = recipe(tmp_path / name, name, "motd.yaml", MOTD)
        ids.append(
            executor.submit(BuildRequest(recipe=source, data_dir=tmp_path, requires=["arm64"])).build_id
        )
    assert executor.cancel(ids[0]) and executor.cancel(ids[1])
    assert jobs_by_status(queue_url) == {"cancelled": 2, "todo": 1}

    assert gc(queue_url, tmp_path / "home")["queue_jobs"] == 0  # default: only those a week old
    assert gc(queue_url, tmp_path / "home", "--jobs-older-than", "0", "--dry-run")["queue_jobs"] == 2
    assert jobs_by_status(queue_url) == {"cancelled": 2, "todo": 1}
    assert gc(queue_url, tmp_path / "home", "--jobs-older-than", "0")["queue_jobs"] == 2
    assert jobs_by_status(queue_url) == {"todo": 1}  # the waiting build's job is kept
    with Catalog.open(queue_url) as catalog:
        assert [catalog.get_build(b).status for b in ids] == ["failed", "failed", "queued"]
        events = catalog.engine.connect().execute(text("SELECT count(*) FROM procrastinate_events")).scalar()
    assert events == 1  # the pruned jobs' events went with them (the waiting job's 'deferred' stays)
    assert executor.cancel(ids[2])  # the remaining job still works


def test_gc_on_sqlite_says_nothing_about_queue_jobs(tmp_path: Path) -> None:
    assert gc("", tmp_path / "home")["queue_jobs"] is None
