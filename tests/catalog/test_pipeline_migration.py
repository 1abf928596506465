"""Migrations 0010 (pipelines) and 0011 (their component cursors) with data in the catalog, down and
up again, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from kiln.catalog import Catalog, NewImage
from kiln.catalog.engine import make_engine
from kiln.catalog.migrate import downgrade, schema_drift, upgrade
from kiln.catalog.pipelines import PipelineRow, PipelineRunRow

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


BEFORE_0010 = "0005"  # 0010's parent; a build emits events since 0009, so it is recorded after that


def test_0010_upgrades_a_catalog_with_data_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    catalog = Catalog(catalog_url)  # no migration on construction
    try:
        upgrade(engine, BEFORE_0010)
        build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r", log_path="l")
        catalog.finish_build(build, NewImage(name="web", version="1.0.0", digest="sha256:" + "a" * 64,
                                             created=NOW, parent="debian:bookworm"))  # fmt: skip
        upgrade(engine)
        assert {"pipelines", "pipeline_runs"} <= set(inspect(engine).get_table_names())
        assert schema_drift(engine) == []
        with catalog.session(write=True) as s, s.begin():
            s.add(PipelineRow(name="web", definition={"name": "web", "recipe": "r.yaml"}, source_path="p.yaml",
                              recipe_path="r.yaml", image="web", parents=["base"], enabled=True, disabled_reason=None,
                              consecutive_failures=0, applied=NOW, schedule_cursor=NOW, parent_cursor={"base": 0}))  # fmt: skip
            s.flush()
            s.add(PipelineRunRow(id="1" * 32, pipeline="web", trigger="manual", cause="test", cause_key="manual:1",
                                 status="succeeded", reason=None, params={"Greeting": "hi"}, build_id=build,
                                 created=NOW))  # fmt: skip
        with catalog.session() as s:
            run = s.get(PipelineRunRow, "1" * 32)
            assert run is not None and run.params == {"Greeting": "hi"} and run.created == NOW
        assert catalog.get_image("web@1.0.0").build_id == build
        downgrade(engine, BEFORE_0010)
        assert not {"pipelines", "pipeline_runs"} & set(inspect(engine).get_table_names())
        assert catalog.get_image("web@1.0.0").build_id == build
        upgrade(engine)
        assert schema_drift(engine) == []
    finally:
        catalog.close()
        engine.dispose()


def test_0011_gives_existing_pipelines_an_empty_component_cursor_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    catalog = Catalog(catalog_url)
    try:
        upgrade(engine, "0010")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pipelines (name, definition, source_path, recipe_path, image, parents, "
                    "enabled, consecutive_failures, applied, parent_cursor) VALUES ('web', "
                    """'{"name": "web", "recipe": "r.yaml"}', 'p.yaml', 'r.yaml', 'web', '["base"]', """
                    "true, 0, :now, '{\"base\": 3}')"
                ),
                {"now": NOW.replace(tzinfo=None)},
            )
        upgrade(engine)
        assert schema_drift(engine) == []
        with catalog.session() as s:
            row = s.get(PipelineRow, "web")
            assert row is not None and row.component_cursor == {} and row.parent_cursor == {"base": 3}
        downgrade(engine, "0010")
        assert "component_cursor" not in {c["name"] for c in inspect(engine).get_columns("pipelines")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT parents FROM pipelines")).scalar_one() in ('["base"]', ["base"])
        upgrade(engine)
        assert schema_drift(engine) == []
    finally:
        catalog.close()
        engine.dispose()
