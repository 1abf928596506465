"""Pruning the event log (``kiln gc --events-older-than``): old events and their delivery log go,
recent ones and those a webhook delivery still owes stay (SQLite and PostgreSQL; the CLI on SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from kiln.catalog import Catalog
from kiln.catalog.models import DeliveryAttemptRow, DeliveryRow, EventRow
from kiln.events import model
from kiln.events.emit import emit
from kiln.events.prune import prune_events
from kiln.events.webhooks import SecretRef, WebhookConfig, add
from kiln.store import Store

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _event(catalog: Catalog, age_days: int, subject: str) -> int:
    event = model.image_state_changed(subject, "active", "deprecated")
    return emit(catalog, event.model_copy(update={"time": NOW - timedelta(days=age_days)}))


def _count(catalog: Catalog, table: type[object]) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[call-overload]


def test_old_events_go_unless_a_delivery_is_owed(catalog: Catalog) -> None:
    recent = _event(catalog, 10, "web@1.0.0/1")
    add(catalog, WebhookConfig(url="http://127.0.0.1:9/hook", secret=SecretRef(kind="env", name="X"),
                               allow_private=True))  # fmt: skip
    owed = _event(catalog, 200, "web@1.0.0/2")  # its delivery is pending
    delivered = _event(catalog, 200, "web@1.0.0/3")
    with catalog.session(write=True) as s, s.begin():
        s.execute(update(DeliveryRow).where(DeliveryRow.event_row == delivered).values(status="delivered"))
        (delivery,) = s.scalars(select(DeliveryRow.id).where(DeliveryRow.event_row == delivered))
        s.add(DeliveryAttemptRow(delivery_id=delivery, number=1, at=NOW, duration_ms=3, status_code=200))
    assert prune_events(catalog, 90, dry_run=True, now=NOW) == 1
    assert _count(catalog, EventRow) == 3  # a dry run deletes nothing
    assert prune_events(catalog, 90, now=NOW) == 1
    with catalog.session() as s:
        assert sorted(s.scalars(select(EventRow.id))) == sorted([recent, owed])
        assert list(s.scalars(select(DeliveryRow.event_row))) == [owed]
    assert _count(catalog, DeliveryAttemptRow) == 0
    assert prune_events(catalog, 90, now=NOW) == 0
    assert prune_events(catalog, 5, now=NOW) == 1  # the recent one is now old enough


def test_gc_prunes_events_and_reports_it(tmp_path: Path) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "home" / "cache")
    with Catalog.open(store.database_url) as catalog:
        for age in (400, 60, 1):
            emit(catalog, model.image_state_changed("web@1.0.0/1", "active", "deprecated").model_copy(
                update={"time": datetime.now(UTC) - timedelta(days=age)}))  # fmt: skip
    env = {**os.environ, "KILN_HOME": str(store.home), "KILN_CACHE_DIR": str(store.cache)}
    env.pop("KILN_DATABASE_URL", None)

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "kiln.cli.main", "gc", *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    assert json.loads(gc("--json", "--dry-run").stdout)["events"] == 1  # default: 90 days
    assert "removed 2 event(s) older than 30 day(s)" in gc("--events-older-than", "30").stdout
    assert json.loads(gc("--json").stdout)["events"] == 0
    with Catalog.open(store.database_url) as catalog:
        assert _count(catalog, EventRow) == 1
