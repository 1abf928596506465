"""Migration 0004 (registry tables) from a 0003 catalog with data in it: nothing is lost, both ways."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text

from kiln.catalog import Catalog
from kiln.catalog.engine import make_engine
from kiln.catalog.migrate import SCHEMA_HEAD, current_revision, downgrade, schema_drift, upgrade
from kiln.registry.components import list_components, publish_component

REGISTRY = {"registry_components", "registry_recipes"}


def _fill_0003(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO builds (id, recipe_name, recipe_version, recipe_path, status, started, log_path, "
                "host, pid) VALUES ('b1', 'web', '1.0.0', '/r/web.yaml', 'succeeded', '2026-01-01 00:00:00', "
                "'/l', 'h', 1)"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO images (name, version, build_number, digest, created, recorded, parent, "
                "recipe_digest, description, size, state, build_id) VALUES ('web', '1.0.0', 1, 'sha256:aa', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 'debian:bookworm', 'sha256:bb', 'd', 5, "
                "'active', 'b1')"
            ))  # fmt: skip
    finally:
        engine.dispose()


def test_upgrade_from_0003_keeps_data_and_downgrade_keeps_it_too(
    catalog_url: str, write_doc: Callable[..., Path]
) -> None:
    _fill_0003(catalog_url)
    with Catalog.open(catalog_url) as catalog:  # upgrades to head
        assert current_revision(catalog.engine) == SCHEMA_HEAD
        assert set(inspect(catalog.engine).get_table_names()) >= REGISTRY
        assert schema_drift(catalog.engine) == []
        image = catalog.get_image("web@1.0.0/1")
        assert (image.digest, image.build_id, image.size) == ("sha256:aa", "b1", 5)
        publish_component(catalog, write_doc("nginx", "1.0.0"), who="t")
        assert [c.version for c in list_components(catalog, "nginx")] == ["1.0.0"]
        downgrade(catalog.engine, "0003")
        assert not REGISTRY & set(inspect(catalog.engine).get_table_names())
        with catalog.engine.connect() as conn:
            assert conn.execute(text("SELECT digest FROM images WHERE name = 'web'")).scalar() == "sha256:aa"
        upgrade(catalog.engine)
        assert current_revision(catalog.engine) == SCHEMA_HEAD
        assert catalog.get_image("web").digest == "sha256:aa"
