"""A fresh database per test in the session's private PostgreSQL server (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.catalog.postgres import fresh_database


@pytest.fixture
def queue_url(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "kiln_queue") as url:
        yield url
