"""A fresh database per test in the session's private PostgreSQL server (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text


@pytest.fixture
def queue_url(postgres_url: str) -> Iterator[str]:
    name = f"kiln_queue_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield postgres_url + name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
