"""Migrations: an empty database reaches head, the models match the migrated schema, down and up work."""

from __future__ import annotations

from sqlalchemy import inspect

from kiln.catalog import Catalog
from kiln.catalog.engine import make_engine
from kiln.catalog.migrate import MIGRATIONS, current_revision, downgrade, head_revision, schema_drift, upgrade

TABLES = {"builds", "images", "image_components", "image_artifacts", "image_evidence", "image_packages"}


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))[0] == "0001_initial.py"
    assert head_revision() is not None


def test_open_creates_schema_matching_the_models(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        assert current_revision(catalog.engine) == head_revision()
        assert set(inspect(catalog.engine).get_table_names()) >= TABLES
        # Like `alembic check`: autogenerate finds nothing to do, so no model change lacks a migration.
        assert schema_drift(catalog.engine) == []


def test_downgrade_to_empty_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    try:
        upgrade(engine)
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert schema_drift(engine) == []
    finally:
        engine.dispose()


def test_reopening_keeps_data(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        build_id = catalog.start_build(recipe_name="r", recipe_version="1.0.0", recipe_path="p", log_path="l")
    with Catalog.open(catalog_url) as catalog:
        assert catalog.get_build(build_id).recipe_name == "r"
