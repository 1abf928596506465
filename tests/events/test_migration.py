"""Migration 0009 (events, webhooks, deliveries) on a catalog at 0003 that holds data."""

from __future__ import annotations

from sqlalchemy import inspect, text

from kiln.catalog import Catalog
from kiln.catalog.engine import make_engine
from kiln.catalog.migrate import downgrade, schema_drift, upgrade
from kiln.events import model
from kiln.events.emit import emit
from kiln.events.stream import page
from tests.catalog.conftest import new_image

TABLES = {"events", "webhooks", "webhook_deliveries", "webhook_attempts"}


def test_upgrade_from_0003_with_data_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        upgrade(engine, "0003")
        assert not TABLES & set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, started, log_path,"
                    " host, pid) VALUES ('"
                    + "a"
                    * 32
                    + "', 'web', '1.0.0', 'p', 'failed', '2026-01-01 00:00:00',"
                    " 'l', 'h', 1)"
                )
            )
        upgrade(engine)
        assert schema_drift(engine) == []
    finally:
        engine.dispose()
    with Catalog.open(catalog_url) as catalog:
        assert catalog.get_build("a" * 32).status == "failed"
        build_id = catalog.start_build(
            recipe_name="web", recipe_version="1.0.0", recipe_path="p", log_path="l"
        )
        catalog.finish_build(build_id, new_image())
        emit(catalog, model.pipeline_run_skipped("nightly", "no updates"))
        assert [e.type for _, e in page(catalog)][-1] == model.PIPELINE_RUN_SKIPPED
    engine = make_engine(catalog_url)
    try:
        downgrade(engine, "0003")
        assert not TABLES & set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM builds")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 1
        upgrade(engine)
        assert schema_drift(engine) == []
    finally:
        engine.dispose()
