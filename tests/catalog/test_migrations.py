"""Migrations: an empty database reaches head, the models match the migrated schema, down and up work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from kiln.catalog import Catalog
from kiln.catalog.engine import make_engine
from kiln.catalog.migrate import MIGRATIONS, current_revision, downgrade, head_revision, schema_drift, upgrade
from kiln.errors import KilnError

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


def test_schema_from_a_newer_kiln_is_refused(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog, catalog.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(KilnError, match=r"schema \(revision f00dfeed\) is newer than this version of Kiln"):
        Catalog.open(catalog_url)


def test_unreachable_databases_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(KilnError, match="cannot open the catalog database postgresql") as refused:
        Catalog.open("postgresql://kiln:secret@127.0.0.1:1/kiln")
    assert "secret" not in str(refused.value)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KilnError, match="cannot create the catalog's directory"):
        Catalog.open(f"sqlite:///{blocker}/sub/catalog.db")
    with pytest.raises(KilnError, match="unsupported catalog database 'mysql'"):
        Catalog.open("mysql://localhost/kiln")


def test_schema_head_constant_matches_alembic() -> None:
    """Opening an up-to-date catalog trusts SCHEMA_HEAD instead of importing Alembic: keep them equal."""
    from kiln.catalog.migrate import SCHEMA_HEAD

    assert head_revision() == SCHEMA_HEAD


def test_parent_digest_index_migration_keeps_images(catalog_url: str) -> None:
    """0006 indexes images.parent_digest: a catalog at 0003 with images (one a child by digest) upgrades
    with every row intact, the child found by its parent's digest, and downgrades again."""
    engine = make_engine(catalog_url)
    try:
        upgrade(engine, "0003")
        now = datetime(2026, 12, 1, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            for number, (name, parent, parent_digest) in enumerate(
                [("base", "debian:bookworm", None), ("app", "kiln:base@1.x", "sha256:" + "a" * 64)]
            ):
                conn.execute(text("INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, "
                                  "started, log_path, host, pid) VALUES (:id, :n, '1.0.0', 'r', 'succeeded', "
                                  ":t, 'l', 'h', 1)"), {"id": f"b{number}", "n": name, "t": now})  # fmt: skip
                conn.execute(text("INSERT INTO images (name, version, build_number, digest, created, recorded, "
                                  "parent, parent_digest, recipe_digest, description, size, state, build_id) "
                                  "VALUES (:n, '1.0.0', 1, :d, :t, :t, :p, :pd, 'r', '', 1, 'active', :b)"),
                             {"n": name, "d": "sha256:" + ("a" if name == "base" else "b") * 64, "t": now,
                              "p": parent, "pd": parent_digest, "b": f"b{number}"})  # fmt: skip
        upgrade(engine)
        assert current_revision(engine) == head_revision() and schema_drift(engine) == []
        assert "ix_images_parent_digest" in {i["name"] for i in inspect(engine).get_indexes("images")}
        with Catalog.open(catalog_url) as catalog:
            assert [c.ref for c in catalog.children("base")] == ["app@1.0.0/1"]
            assert catalog.get_image("app").parent == "kiln:base@1.x"
        downgrade(engine, "0003")
        assert "ix_images_parent_digest" not in {i["name"] for i in inspect(engine).get_indexes("images")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 2
    finally:
        engine.dispose()


def test_lifecycle_migration_keeps_data_and_renames_deleted_to_retired(catalog_url: str) -> None:
    """0005 (lifecycle) from 0003 with images in it: rows kept, the old ``deleted`` state becomes
    ``retired``, the history table starts empty; down again restores ``deleted``."""
    engine = make_engine(catalog_url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            for i, state in enumerate(("active", "deleted", "deprecated"), start=1):
                conn.execute(
                    text(
                        "INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, started,"
                        " log_path, host, pid) VALUES (:id, 'web', '1.0.0', 'r.yaml', 'succeeded',"
                        " '2026-01-01 00:00:00', 'l', 'h', 1)"
                    ),
                    {"id": f"b{i}"},
                )
                conn.execute(
                    text(
                        "INSERT INTO images (id, name, version, build_number, digest, created, recorded, parent,"
                        " recipe_digest, description, size, state, build_id) VALUES (:id, 'web', '1.0.0', :id,"
                        " :digest, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'debian:bookworm', 'sha256:r',"
                        " 'd', 10, :state, :build)"
                    ),
                    {"id": i, "digest": f"sha256:{i}", "state": state, "build": f"b{i}"},
                )
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, digest, state FROM images ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [
                (1, "sha256:1", "active"), (2, "sha256:2", "retired"), (3, "sha256:3", "deprecated"),
            ]  # fmt: skip
            assert conn.execute(text("SELECT count(*) FROM image_state_changes")).scalar() == 0
        assert schema_drift(engine) == []
        with Catalog.open(catalog_url) as catalog:
            assert catalog.get_image("web@1.0.0/2").state == "retired"
        downgrade(engine, "0003")
        assert "image_state_changes" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT state FROM images WHERE id = 2")).scalar() == "deleted"
    finally:
        engine.dispose()
