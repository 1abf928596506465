"""Registry fixtures: the catalog tests' fixtures (SQLite and PostgreSQL) and component documents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.catalog.conftest import catalog, catalog_url

__all__ = ["catalog", "catalog_url"]


def document(name: str, version: str | None = None, marker: str = "hello", extra: str = "") -> str:
    """A small valid AWSTOE document whose build step writes ``marker`` to /etc/<name>.txt."""
    head = f"name: {name}\ndescription: {name} for tests\n" + (f"version: {version}\n" if version else "")
    return (
        head
        + extra
        + (
            "schemaVersion: 1.0\n"
            "phases:\n"
            "  - name: build\n"
            "    steps:\n"
            "      - name: Write\n"
            "        action: ExecuteBash\n"
            "        inputs:\n"
            "          commands:\n"
            f"            - echo {marker} > /etc/{name}.txt\n"
        )
    )


@pytest.fixture
def write_doc(tmp_path: Path) -> Callable[..., Path]:
    """Writes a component document (see :func:`document`) and returns its path."""
    count = iter(range(1000))

    def write(name: str, version: str | None = None, marker: str = "hello", extra: str = "") -> Path:
        path = tmp_path / f"{name}-{next(count)}.yaml"
        path.write_text(document(name, version, marker, extra))
        return path

    return write
