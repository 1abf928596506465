"""Lifecycle fixtures: a real SQLite catalog in a real data directory, and quick ways to fill it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from kiln.catalog import ArtifactRecord, Catalog, EvidenceRecord, NewImage
from kiln.catalog.models import ImageRow, PromotionRow
from kiln.store import Store
from tests.catalog.conftest import catalog_url  # noqa: F401  (fixtures: SQLite and PostgreSQL)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path) -> Store:
    """A data directory with its own cache (nothing shared with other tests)."""
    return Store.open_at(tmp_path / "home", tmp_path / "home" / "cache")


@pytest.fixture
def catalog(home: Store) -> Iterator[Catalog]:
    with Catalog.open(home.database_url) as opened:
        yield opened


@pytest.fixture
def any_catalog(catalog_url: str) -> Iterator[Catalog]:  # noqa: F811
    """A catalog on SQLite, then on a real PostgreSQL server."""
    with Catalog.open(catalog_url) as opened:
        yield opened


def record(
    catalog: Catalog,
    name: str,
    version: str = "1.0.0",
    *,
    recorded: datetime | None = None,
    digest: str | None = None,
    parent_digest: str | None = None,
    state: str = "active",
    artifacts: list[ArtifactRecord] | None = None,
    evidence: list[EvidenceRecord] | None = None,
) -> str:
    """Record an image as a build would; returns its ref (``name@version/build``)."""
    build = catalog.start_build(recipe_name=name, recipe_version=version, recipe_path="/nonexistent.yaml",
                                log_path="/nonexistent.jsonl")  # fmt: skip
    image = catalog.finish_build(
        build,
        NewImage(
            name=name, version=version, digest=digest or "sha256:" + uuid.uuid4().hex * 2,
            created=NOW, parent="debian:bookworm", parent_digest=parent_digest,
            artifacts=artifacts or [], evidence=evidence or [],
        ),
    )  # fmt: skip
    with catalog.session(write=True) as s, s.begin():
        s.execute(
            update(ImageRow)
            .where(ImageRow.name == name, ImageRow.version == version, ImageRow.build_number == image.build)
            .values(state=state, recorded=recorded or NOW)
        )
    return image.ref


def point_channel(catalog: Catalog, ref: str, channel: str) -> None:
    """Make ``channel`` of the image's name point at ``ref`` (an allowed promotion row)."""
    image = catalog.get_image(ref)
    with catalog.session(write=True) as s, s.begin():
        row = (
            s.query(ImageRow)
            .filter_by(name=image.name, version=image.version, build_number=image.build)
            .one()
        )
        s.add(PromotionRow(image_name=image.name, channel=channel, image_id=row.id, action="promote",
                           allowed=True, decision={}, envelope=None, who="test", at=NOW))  # fmt: skip
