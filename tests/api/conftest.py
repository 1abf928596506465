"""API fixtures: a seeded catalog (rows written directly, no build) and an in-process client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.api import ApiConfig, create_app
from kiln.settings import Settings
from tests.api.seed import Seeded, seed


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("api-home"))


def make_client(home: Path, **options: object) -> TestClient:
    config = ApiConfig(data_dir=home, settings=Settings(), **options)  # type: ignore[arg-type]
    return TestClient(create_app(config), base_url="http://127.0.0.1")


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    with make_client(seeded.home, public_read=True) as c:
        yield c
