"""Queued builds in the catalog (both databases): attempts are fencing tokens, history is kept, and
migration 0008 keeps existing data (and brings Procrastinate's schema on PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, text

from kiln.capabilities import Capabilities
from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.catalog.engine import make_engine
from kiln.catalog.fencing import Superseded
from kiln.catalog.migrate import current_revision, head_revision, schema_drift, upgrade
from kiln.catalog.models import BuildRow
from tests.catalog.conftest import new_image


def queue_one(catalog: Catalog, max_attempts: int = 2) -> str:
    build_id = uuid.uuid4().hex
    with catalog.session(write=True) as s, s.begin():
        jobs.add_queued(s, build_id=build_id, recipe_name="web", recipe_version="1.0.0", recipe_path="/r.yaml",
                        queue="builds.amd64", needs=Capabilities(arch="amd64"), max_attempts=max_attempts,
                        queueing_lock=None)  # fmt: skip
    return build_id


def adopt(catalog: Catalog, build_id: str, attempt: int) -> str:
    return catalog.adopt_build(build_id, attempt, recipe_name="web", recipe_version="1.0.0",
                               recipe_path="/r.yaml", log_path="/l.jsonl")  # fmt: skip


def test_only_the_current_attempt_records(catalog: Catalog) -> None:
    build_id = queue_one(catalog)
    assert catalog.get_build(build_id).status == "queued"
    assert jobs.claim(catalog, build_id, "w1") == 1
    adopt(catalog, build_id, 1)
    assert jobs.requeue_lost(catalog, build_id, "worker lost") is True  # w1 stopped heartbeating
    assert catalog.get_build(build_id).status == "queued"
    assert jobs.claim(catalog, build_id, "w2") == 2
    with pytest.raises(Superseded, match=r"attempt 1 .* superseded by attempt 2"):
        catalog.finish_build(build_id, new_image(), attempt=1)  # the old attempt woke up: fenced
    with pytest.raises(Superseded):
        catalog.fail_build(build_id, "late failure", attempt=1)
    adopt(catalog, build_id, 2)
    catalog.finish_build(build_id, new_image(), attempt=2)
    assert catalog.get_build(build_id).status == "succeeded"
    assert len(catalog.list_images("web")) == 1
    history = [(a["attempt"], a["worker"], a["outcome"]) for a in jobs.attempts(catalog, build_id)]
    assert history == [(1, "w1", "lost"), (2, "w2", "succeeded")]
    assert jobs.claim(catalog, build_id, "w3") is None  # finished: nothing more to run


def test_attempts_run_out_and_the_build_fails_visibly(catalog: Catalog) -> None:
    build_id = queue_one(catalog, max_attempts=1)
    assert jobs.claim(catalog, build_id, "w1") == 1
    assert jobs.requeue_lost(catalog, build_id, "worker lost (no heartbeat for 30s)") is False
    build = catalog.get_build(build_id)
    assert (
        build.status == "failed"
        and build.error == "worker lost (no heartbeat for 30s); gave up after 1 attempt(s)"
    )


def test_queued_builds_are_not_reaped_by_process_liveness(catalog: Catalog) -> None:
    """A queued build's process may be on any host; the queue's stalled-job sweep owns it."""
    build_id = queue_one(catalog)
    assert jobs.claim(catalog, build_id, "w1") == 1
    with catalog.session(write=True) as s, s.begin():
        row = s.get(BuildRow, build_id)
        assert row is not None
        row.pid, row.pid_start = 2**22 + 1, 1  # a process that does not exist, on this host
    assert catalog.reap_interrupted() == []


def test_migration_0008_keeps_data_and_adds_the_queue(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        upgrade(engine, "0003")
        build_id = "b" * 32  # written as a 0003 catalog held it (today's Catalog also writes later tables)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, started, log_path, "
                f"host, pid) VALUES ('{build_id}', 'r', '1.0.0', 'p', 'running', '2026-01-01 00:00:00', 'l', 'h', 1)"
            ))  # fmt: skip
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"build_jobs", "build_attempts", "workers"} <= tables
        assert ("procrastinate_jobs" in tables) == (engine.dialect.name == "postgresql")
        assert schema_drift(engine) == []
        with Catalog(catalog_url) as new:
            assert new.get_build(build_id).recipe_name == "r"
    finally:
        engine.dispose()
