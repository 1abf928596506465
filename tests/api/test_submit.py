"""Build submission: bad recipes come back as problems from the worker (file:line), uploaded recipes
cannot reach host files, and a real build runs in a worker process, is followed live and cancelled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog
from kiln.store import Store
from tests.api.conftest import make_client
from tests.documents import create_file_component, recipe_yaml, sleep_component

MOTD = create_file_component("built through the API\n")
SLOW = sleep_component(120, name="slow")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    home = tmp_path / "home"
    store = Store.open(home)
    with Catalog.open(store.database_url) as catalog:
        token, _ = create_token(
            catalog, server_secret(store.home), "ci", ["builds:write", "builds:read"], None
        )
    with make_client(home) as client:
        yield client, {"Authorization": f"Bearer {token}"}, home


def test_invalid_recipe_is_a_422_with_file_and_line(writer: tuple[TestClient, dict[str, str], Path]) -> None:
    client, auth, home = writer
    bad = "name: x\nversion: 1.0.0\nparent: {image: 'debian:bookworm'}\ncomponents:\n  - name: no-such-builtin\n"
    response = client.post("/api/v1/builds", json={"recipe": bad}, headers=auth)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert any(e.startswith("recipe.yaml:5") and "no-such-builtin" in e for e in problem["errors"]), problem
    assert str(home) not in response.text


@pytest.mark.parametrize(
    ("recipe", "components", "why"),
    [
        (recipe_yaml("x", "/etc/passwd"), {}, "'/etc/passwd' is not one of the uploaded"),
        (recipe_yaml("x", "../../catalog.db.yaml"), {}, "is not one of the uploaded"),
        (recipe_yaml("x") + "secrets:\n  - {name: k, source: 'file:/etc/shadow'}\n",
         {"motd.yaml": MOTD}, "secrets: not accepted"),
        (recipe_yaml("x") + "signing: {key: /root/.ssh/id_ed25519}\n",
         {"motd.yaml": MOTD}, "signing.key"),
    ],
)  # fmt: skip
def test_uploaded_recipes_cannot_name_host_files(
    writer: tuple[TestClient, dict[str, str], Path], recipe: str, components: dict[str, str], why: str
) -> None:
    client, auth, home = writer
    response = client.post("/api/v1/builds", json={"recipe": recipe, "components": components}, headers=auth)
    assert response.status_code == 400 and why in response.json()["detail"]
    assert not (home / "jobs").exists() and not (home / "uploads").exists()


def test_request_shape_errors(writer: tuple[TestClient, dict[str, str], Path]) -> None:
    client, auth, _ = writer
    both = client.post("/api/v1/builds", json={"recipe": "x", "recipe_ref": "web"}, headers=auth)
    assert both.status_code == 422 and "recipe_ref: Extra inputs are not permitted" in both.json()["detail"]
    bad_name = client.post(
        "/api/v1/builds", json={"recipe": "x", "components": {"../x.yaml": ""}}, headers=auth
    )
    assert bad_name.status_code == 422
    unknown = client.post("/api/v1/builds", json={"recipe_ref": "nothing@1.0.0"}, headers=auth)
    assert unknown.status_code == 404 and "no build of a recipe 'nothing@1.0.0'" in unknown.json()["detail"]


def test_request_bodies_are_capped(writer: tuple[TestClient, dict[str, str], Path]) -> None:
    client, auth, home = writer
    huge = client.post("/api/v1/builds", content=b"{" + b" " * (9 << 20) + b"}",
                       headers={**auth, "Content-Type": "application/json"})  # fmt: skip
    assert huge.status_code == 413 and "over 8 MiB" in huge.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"recipe_ref": "x"}'

    chunked = client.post(
        "/api/v1/builds", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert chunked.status_code == 411
    assert not (home / "jobs").exists()


def _follow(client: TestClient, build_id: str, auth: dict[str, str]) -> list[dict[str, object]]:
    events = []
    with client.stream(
        "GET", f"/api/v1/builds/{build_id}/log", params={"follow": "true"}, headers=auth
    ) as sse:
        kind = ""
        for line in sse.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append({"event": kind, **json.loads(line[6:])})
    return events


@pytest.mark.e2e
def test_build_through_the_api_then_rebuild_by_reference_and_cancel(
    writer: tuple[TestClient, dict[str, str], Path],
) -> None:
    client, auth, _home = writer
    body = {
        "recipe": recipe_yaml("api-motd"),
        "components": {"motd.yaml": MOTD},
    }
    submitted = client.post("/api/v1/builds", json=body, headers=auth)
    assert submitted.status_code == 202, submitted.text
    build_id = submitted.json()["build_id"]
    events = _follow(client, build_id, auth)
    assert events[0]["build"] == build_id and events[-1] == {"event": "end", "status": "succeeded"}
    assert any("requested by api token ci" in str(e.get("message")) for e in events)
    build = client.get(f"/api/v1/builds/{build_id}", headers=auth).json()
    assert build["status"] == "succeeded" and build["image"] == "api-motd@1.0.0/1"
    again = client.post("/api/v1/builds", json={"recipe_ref": "api-motd@1.0.0"}, headers=auth).json()[
        "build_id"
    ]
    assert _follow(client, again, auth)[-1] == {"event": "end", "status": "succeeded"}
    assert client.get(f"/api/v1/builds/{again}", headers=auth).json()["image"] == "api-motd@1.0.0/2"

    slow = {
        "recipe": recipe_yaml("api-slow", "slow.yaml"),
        "components": {"slow.yaml": SLOW},
    }
    running = client.post("/api/v1/builds", json=slow, headers=auth).json()["build_id"]
    assert client.post(f"/api/v1/builds/{running}/cancel", headers=auth).json() == {
        "build_id": running,
        "cancelled": True,
    }
    deadline = time.monotonic() + 60
    while (state := client.get(f"/api/v1/builds/{running}", headers=auth).json())["status"] == "running":
        assert time.monotonic() < deadline, "the cancelled build is still running"
        time.sleep(0.2)
    assert state["status"] == "failed" and state["error"] == "interrupted"
    assert client.post(f"/api/v1/builds/{running}/cancel", headers=auth).status_code == 409


def test_following_a_build_whose_process_died_ends(
    writer: tuple[TestClient, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed with SIGKILL cannot record its end; the follower notices the dead process."""
    import subprocess
    import sys

    from kiln.api.routes import builds

    client, auth, home = writer
    log = home / "logs" / "dead.jsonl"
    log.write_text('{"kind": "start", "scope": "build", "message": "build dead 1.0.0", "time": 1}\n')
    script = ("import sys; from kiln.catalog import Catalog; c = Catalog.open(sys.argv[1]); "
              "print(c.start_build(recipe_name='dead', recipe_version='1.0.0', recipe_path='r', log_path=sys.argv[2]))")  # fmt: skip
    build_id = subprocess.run([sys.executable, "-c", script, f"sqlite:///{home}/catalog.db", str(log)],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    monkeypatch.setattr(builds, "REAP_EVERY", 1)
    events = _follow(client, build_id, auth)
    assert events[-1] == {"event": "end", "status": "failed"}
    assert "interrupted" in client.get(f"/api/v1/builds/{build_id}", headers=auth).json()["error"]
