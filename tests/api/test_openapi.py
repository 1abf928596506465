"""The committed OpenAPI document is the code's (regenerate with ``make openapi``), and is served."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from kiln.api.openapi import document

COMMITTED = Path(__file__).resolve().parents[2] / "docs/openapi.json"


def test_committed_document_matches_the_code() -> None:
    assert COMMITTED.read_text() == document(), "docs/openapi.json is stale: run `make openapi` and commit it"


def test_served_under_the_api_prefix(client: TestClient) -> None:
    served = client.get("/api/v1/openapi.json").json()
    assert served == json.loads(COMMITTED.read_text())
    assert all(path.startswith("/api/v1/") for path in served["paths"])
