"""POST /builds carries the build options a caller may choose into the request the executor gets:
``refresh`` (kiln build --refresh), ``skip_tests`` and ``test_timeout`` (kiln build --no-tests /
--test-timeout). The executor here records the request instead of starting a worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog
from kiln.executors.base import Submitted
from kiln.models import BuildRequest
from kiln.store import Store
from tests.api.conftest import make_client

RECIPE = "name: web\nversion: 1.0.0\nparent: {image: 'debian:bookworm'}\n"


@dataclass
class Recording:
    requests: list[BuildRequest] = field(default_factory=list)

    def submit(self, request: BuildRequest, *, wait: float = 60.0) -> Submitted:
        self.requests.append(request)
        return Submitted(job="job-1", build_id="0" * 32)

    def cancel(self, build_id: str) -> bool:
        return False


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Recording]]:
    store = Store.open(tmp_path / "home")
    with Catalog.open(store.database_url) as catalog:
        token, _ = create_token(catalog, server_secret(store.home), "ci", ["builds:write"], None)
    with make_client(store.home) as client:
        recording = Recording()
        client.app.state.executor = recording  # type: ignore[attr-defined]
        yield client, {"Authorization": f"Bearer {token}"}, recording


def test_refresh_and_test_options_reach_the_executor(
    api: tuple[TestClient, dict[str, str], Recording],
) -> None:
    client, auth, recording = api
    options = {"refresh": True, "skip_tests": True, "test_timeout": 90}
    reply = client.post("/api/v1/builds", json={"recipe": RECIPE, "options": options}, headers=auth)
    assert reply.status_code == 202, reply.text
    [request] = recording.requests
    chosen = request.options
    assert (chosen.refresh, chosen.skip_tests, chosen.test_timeout) == (True, True, 90)
    assert not request.options.refresh_parent and not request.options.no_cache

    reply = client.post("/api/v1/builds", json={"recipe": RECIPE}, headers=auth)
    assert reply.status_code == 202, reply.text
    defaults = recording.requests[-1].options
    assert (defaults.refresh, defaults.skip_tests, defaults.test_timeout) == (False, False, None)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"refresh": "sometimes"}, "refresh"),
        ({"test_timeout": 0}, "test_timeout"),
        ({"tests": False}, "tests"),
    ],
)
def test_bad_options_are_refused(
    api: tuple[TestClient, dict[str, str], Recording], options: dict[str, object], field: str
) -> None:
    client, auth, recording = api
    reply = client.post("/api/v1/builds", json={"recipe": RECIPE, "options": options}, headers=auth)
    assert reply.status_code == 422, reply.text
    assert field in reply.text
    assert recording.requests == []
