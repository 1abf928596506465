"""Catalog fixtures: every catalog test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.catalog import (
    ArtifactRecord,
    Catalog,
    ComponentRecord,
    EvidenceRecord,
    NewImage,
    PackageRecord,
)
from tests.catalog.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty catalog database (nothing created in it yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_url"), "kiln_test") as url:
        yield url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    with Catalog.open(catalog_url) as opened:
        yield opened


def new_image(name: str = "web", version: str = "1.0.0", **overrides: object) -> NewImage:
    """A complete image as a build would hand it over."""
    fields: dict[str, object] = {
        "name": name,
        "version": version,
        "digest": "sha256:" + uuid.uuid4().hex * 2,
        "created": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "parent": "debian:bookworm",
        "parent_digest": "sha256:" + "0" * 64,
        "recipe_digest": "sha256:" + "1" * 64,
        "description": "nginx serving a hello page",
        "size": 123_456_789,
        "components": [
            ComponentRecord(name="update-os", version="1.0.0", digest="sha256:" + "2" * 64),
            ComponentRecord(
                name="nginx", version="1.2.0", digest="sha256:" + "3" * 64, parameters={"port": "80"}
            ),
        ],
        "artifacts": [
            ArtifactRecord(
                kind="oci", path="/data/images/web/1.0.0/oci", digest="sha256:" + "4" * 64, size=10
            ),
            ArtifactRecord(
                kind="qcow2", path="/data/images/web/1.0.0/d.qcow2", digest="sha256:" + "5" * 64, size=7
            ),
        ],
        "evidence": [
            EvidenceRecord(
                kind="sbom-spdx",
                path="/data/blobs/sha256/" + "6" * 64,
                digest="sha256:" + "6" * 64,
                summary={"packages": 211},
            ),
            EvidenceRecord(
                kind="vuln-report",
                path="/data/blobs/sha256/" + "7" * 64,
                digest="sha256:" + "7" * 64,
                summary={"critical": 0, "high": 2},
            ),
        ],
        "packages": [
            PackageRecord(name="openssl", version="3.0.11-1~deb12u2", architecture="amd64"),
            PackageRecord(
                name="libssl3",
                version="3.0.11-1~deb12u2",
                architecture="amd64",
                source="openssl",
                source_version="3.0.11-1~deb12u2",
            ),
        ],
        "lock": {"debs": {"nginx": "1.22.1-9"}},
    }
    fields.update(overrides)
    return NewImage.model_validate(fields)


@pytest.fixture
def record_image(catalog: Catalog, tmp_path: Path) -> Callable[..., str]:
    """Records a successful build of an image; returns the build id."""

    def record(name: str = "web", version: str = "1.0.0", **overrides: object) -> str:
        build_id = catalog.start_build(
            recipe_name=name, recipe_version=version, recipe_path=f"/recipes/{name}.yaml",
            log_path=str(tmp_path / f"{name}.jsonl"),
        )  # fmt: skip
        catalog.finish_build(build_id, new_image(name, version, **overrides))
        return build_id

    return record
