"""Every endpoint by every scope: allowed → not 401/403, denied → 403 with no side effect, no token →
401; expired, revoked and forged tokens are refused; every mutating call leaves an audit record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kiln.access.scopes import SCOPES, allows
from kiln.access.secret import server_secret
from kiln.access.tokens import create_token, revoke_token
from kiln.api.eventstream import slots_of
from kiln.catalog import Catalog
from kiln.errors import KilnError
from kiln.store import Store
from tests.api.conftest import make_client
from tests.api.seed import Seeded, seed

ALL_SCOPES = [*SCOPES, "channels:promote:stable", "channels:promote:dev"]
BAD_RECIPE = "name: x\nversion: 1.0.0\nparent: {image: 'debian:bookworm'}\ncomponents: []\n"

# (method, path template) → (scope needed, concrete path, JSON body). A route without a row fails the test.
ENDPOINTS: dict[tuple[str, str], tuple[str, str, object]] = {
    ("GET", "/api/v1/images"): ("images:read", "/api/v1/images?package=openssl", None),
    ("GET", "/api/v1/images/{name}/{version}/{build}"): ("images:read", "/api/v1/images/web/1.0.0/1", None),
    ("GET", "/api/v1/images/{name}/{version}/{build}/packages"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/packages",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/sbom"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/sbom",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/scan"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/scan",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/compliance"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/compliance",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/provenance"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/provenance",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/verification"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/verification",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/artifacts/{index}"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/artifacts/1",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/artifacts/{index}/files/{path}"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/artifacts/0/files/index.json",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/diff"): (
        "images:read",
        "/api/v1/images/app/2.0.0/1/diff?against=web@1.0.0/1",
        None,
    ),
    ("GET", "/api/v1/components"): ("images:read", "/api/v1/components", None),
    ("GET", "/api/v1/vulndb"): ("images:read", "/api/v1/vulndb", None),
    ("GET", "/api/v1/builds"): ("builds:read", "/api/v1/builds", None),
    ("GET", "/api/v1/builds/{build_id}"): ("builds:read", "/api/v1/builds/{build}", None),
    ("GET", "/api/v1/builds/{build_id}/log"): ("builds:read", "/api/v1/builds/{build}/log", None),
    ("POST", "/api/v1/builds"): ("builds:write", "/api/v1/builds", {"recipe": BAD_RECIPE}),
    ("POST", "/api/v1/builds/{build_id}/cancel"): ("builds:write", "/api/v1/builds/{build}/cancel", None),
    ("GET", "/api/v1/audit"): ("admin", "/api/v1/audit", None),
    ("GET", "/api/v1/events"): ("builds:read", "/api/v1/events", None),
    ("GET", "/api/v1/events/stream"): ("builds:read", "/api/v1/events/stream?after=0", None),
    ("PUT", "/api/v1/images/{name}/{version}/{build}/labels/{key}"): (
        "images:write",
        "/api/v1/images/web/1.0.0/1/labels/team",
        {"value": "not a value!"},
    ),
    ("DELETE", "/api/v1/images/{name}/{version}/{build}/labels/{key}"): (
        "images:write",
        "/api/v1/images/web/1.0.0/1/labels/no-such-key",
        None,
    ),
    ("POST", "/api/v1/images/{name}/{version}/{build}/state"): (
        "images:write",
        "/api/v1/images/web/1.0.0/1/state",
        {"state": "active", "reason": "already"},
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/history"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/history",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/lineage"): (
        "images:read",
        "/api/v1/images/app/2.0.0/1/lineage",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/diff/full"): (
        "images:read",
        "/api/v1/images/app/2.0.0/1/diff/full?against=web@1.0.0/1",
        None,
    ),
    ("GET", "/api/v1/images/{name}/{version}/{build}/distributions"): (
        "images:read",
        "/api/v1/images/web/1.0.0/1/distributions",
        None,
    ),
    ("GET", "/api/v1/pipelines"): ("builds:read", "/api/v1/pipelines", None),
    ("GET", "/api/v1/pipelines/{name}"): ("builds:read", "/api/v1/pipelines/web-nightly", None),
    ("GET", "/api/v1/pipelines/{name}/runs"): ("builds:read", "/api/v1/pipelines/web-nightly/runs", None),
    ("POST", "/api/v1/pipelines/{name}/runs"): (
        "pipelines:run",
        "/api/v1/pipelines/web-nightly/runs",
        {"params": {"Greeting": "not allowed"}},
    ),
    ("POST", "/api/v1/pipelines/{name}/enable"): (
        "pipelines:write",
        "/api/v1/pipelines/web-nightly/enable",
        None,
    ),
    ("POST", "/api/v1/pipelines/{name}/disable"): (
        "pipelines:write",
        "/api/v1/pipelines/no-such/disable",
        None,
    ),
    ("GET", "/api/v1/channels"): ("images:read", "/api/v1/channels", None),
    ("GET", "/api/v1/channels/history"): ("images:read", "/api/v1/channels/history?name=web", None),
    ("POST", "/api/v1/channels/{channel}/promotions"): (
        "channels:promote:stable",
        "/api/v1/channels/stable/promotions",
        {"ref": "web@1.0.0/1"},
    ),
    ("GET", "/api/v1/registry/components"): ("images:read", "/api/v1/registry/components", None),
    ("GET", "/api/v1/registry/components/{name}"): (
        "images:read",
        "/api/v1/registry/components/update-os",
        None,
    ),
    ("POST", "/api/v1/registry/components"): (
        "registry:write",
        "/api/v1/registry/components",
        {"document": "x: 1"},
    ),
    ("POST", "/api/v1/registry/components/{name}/deprecate"): (
        "registry:write",
        "/api/v1/registry/components/update-os/deprecate",
        {"version": "1.0.0", "reason": "superseded"},
    ),
    ("GET", "/api/v1/registry/recipes"): ("images:read", "/api/v1/registry/recipes", None),
    ("GET", "/api/v1/registry/recipes/{name}"): ("images:read", "/api/v1/registry/recipes/no-such", None),
    ("POST", "/api/v1/registry/recipes"): (
        "registry:write",
        "/api/v1/registry/recipes",
        {"recipe": BAD_RECIPE},
    ),
}
# What an allowed write answers to the (deliberately wrong) input above; anything else fails the test.
WRITE_ANSWERS: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/pipelines/{name}/enable"): (200,),  # already enabled: no change
    ("POST", "/api/v1/pipelines/{name}/disable"): (404,),
    ("DELETE", "/api/v1/images/{name}/{version}/{build}/labels/{key}"): (404,),
    ("PUT", "/api/v1/images/{name}/{version}/{build}/labels/{key}"): (400,),
    ("POST", "/api/v1/images/{name}/{version}/{build}/state"): (409,),
    ("POST", "/api/v1/channels/{channel}/promotions"): (409,),  # no signing key configured
    ("POST", "/api/v1/registry/components/{name}/deprecate"): (200,),  # again: a no-op
}
CHANGED_BY_WRITES = ("builds", "image_labels", "image_state_changes", "pipeline_runs", "promotions",
                     "registry_components", "registry_recipes")  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("access-home"))


@pytest.fixture(scope="module")
def tokens(home: Seeded) -> dict[str, str]:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        secret = server_secret(store.home)
        made = {
            scope: create_token(catalog, secret, f"t-{scope.replace(':', '.')}", [scope], None)[0]
            for scope in ALL_SCOPES
        }
        past = datetime.now(UTC) - timedelta(days=2)
        made["expired"] = create_token(catalog, secret, "old", ["admin"], timedelta(days=1), now=past)[0]
        made["revoked"] = create_token(catalog, secret, "gone", ["admin"], None)[0]
        revoke_token(catalog, "gone")
    return made


@pytest.fixture(scope="module")
def client(home: Seeded) -> Iterator[TestClient]:
    with make_client(home.home) as c:  # no --public-read
        slots_of(c.app).max_seconds = 0.2  # type: ignore[arg-type]  # event streams end: the body is read
        yield c


def _side_effects(home: Path) -> tuple[object, ...]:
    """What a write can change: rows of the tables writes touch, every image's state, every pipeline's
    enabled flag, job and upload folders."""
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog, catalog.session() as s:
        rows = [s.scalar(text(f"SELECT count(*) FROM {table}")) for table in CHANGED_BY_WRITES]
        states = s.execute(text("SELECT name, version, build_number, state FROM images ORDER BY id")).all()
        enabled = s.execute(text("SELECT name, enabled FROM pipelines ORDER BY name")).all()
        published = s.execute(
            text("SELECT name, version, state FROM registry_components ORDER BY name, version")
        ).all()
    jobs = len(list((home / "jobs").iterdir())) if (home / "jobs").is_dir() else 0
    uploads = len(list((home / "uploads").iterdir())) if (home / "uploads").is_dir() else 0
    return *rows, tuple(states), tuple(enabled), tuple(published), jobs, uploads


def _call(client: TestClient, method: str, path: str, body: object, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers).status_code


def test_every_route_has_a_row(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routes == set(ENDPOINTS)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS), ids=lambda e: f"{e[0]} {e[1]}")
def test_endpoint_by_scope(
    endpoint: tuple[str, str], client: TestClient, tokens: dict[str, str], home: Seeded
) -> None:
    method, _ = endpoint
    needed, path, body = ENDPOINTS[endpoint]
    path = path.format(build=home.build_id)
    assert _call(client, method, path, body, None) == 401
    for scope in ALL_SCOPES:
        before = _side_effects(home.home)
        status = _call(client, method, path, body, tokens[scope])
        if allows(frozenset({scope}), needed):
            assert status not in (401, 403), (scope, status)
            assert status < 500
            if method != "GET":  # a bad recipe, a finished build, ...
                assert status in WRITE_ANSWERS.get(endpoint, (409, 422)), (scope, status)
        else:
            assert status == 403, (scope, status)
            assert _side_effects(home.home) == before, scope
    for refused in ("expired", "revoked"):
        assert _call(client, method, path, body, tokens[refused]) == 401


def test_refusals_say_why(client: TestClient, tokens: dict[str, str]) -> None:
    expired = client.get("/api/v1/images", headers={"Authorization": f"Bearer {tokens['expired']}"})
    assert "expired" in expired.json()["detail"] and expired.headers["www-authenticate"] == "Bearer"
    revoked = client.get("/api/v1/images", headers={"Authorization": f"Bearer {tokens['revoked']}"})
    assert revoked.json()["detail"] == "API token 'gone' was revoked"
    forged = tokens["admin"][:-4] + "AAAA"
    assert (
        client.get("/api/v1/images", headers={"Authorization": f"Bearer {forged}"}).json()["detail"]
        == "unknown API token"
    )
    assert client.get("/api/v1/images", headers={"Authorization": "Basic eDp5"}).status_code == 401
    denied = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {tokens['images:read']}"})
    assert denied.json()["detail"] == "token 't-images.read' lacks the scope 'admin'"


def test_a_cookie_never_authorises_a_write(client: TestClient, tokens: dict[str, str]) -> None:
    client.cookies.set("kiln_session", tokens["admin"])
    try:
        assert client.get("/api/v1/builds").status_code == 200
        assert client.post("/api/v1/builds", json={"recipe": BAD_RECIPE}).status_code == 401
    finally:
        client.cookies.clear()


def test_mutating_calls_are_audited(client: TestClient, tokens: dict[str, str], home: Seeded) -> None:
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    client.post(
        f"/api/v1/builds/{home.build_id}/cancel", headers={"Authorization": f"Bearer {tokens['images:read']}"}
    )
    client.post(f"/api/v1/builds/{home.build_id}/cancel", headers=admin)
    records = client.get("/api/v1/audit", params={"limit": 2}, headers=admin).json()
    assert [(r["actor"].split(" ")[0], r["status"]) for r in records] == [
        ("t-admin", 409),
        ("t-images.read", 403),
    ]
    assert records[0]["action"] == f"POST /api/v1/builds/{home.build_id}/cancel"
    assert records[0]["target"] == home.build_id and records[0]["remote"] == "testclient"
    older = client.get("/api/v1/audit", params={"before": records[1]["id"], "limit": 1}, headers=admin).json()
    assert older[0]["id"] < records[1]["id"]


def test_image_patterns_limit_what_a_token_sees(home: Seeded) -> None:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        token, info = create_token(
            catalog, server_secret(store.home), "team-app", ["images:read"], None, images=["app*"]
        )
    assert info.images == ["app*"]
    auth = {"Authorization": f"Bearer {token}"}
    with make_client(home.home) as client:
        assert [i["ref"] for i in client.get("/api/v1/images", headers=auth).json()["items"]] == [
            "app@2.0.0/1"
        ]
        by_package = client.get("/api/v1/images", params={"package": "openssl"}, headers=auth).json()["items"]
        assert [i["ref"] for i in by_package] == ["app@2.0.0/1"]
        assert (
            client.get("/api/v1/images", params={"name": "web", "package": "openssl"}, headers=auth).json()[
                "items"
            ]
            == []
        )
        hidden = client.get("/api/v1/images/web/1.0.0/1/artifacts/1", headers=auth)
        assert hidden.status_code == 404 and hidden.json()["detail"] == "no image web@1.0.0/1"
        app = client.get("/api/v1/images/app/2.0.0/1", headers=auth).json()
        assert app["lineage"] == ["(not visible)", "debian:bookworm"]
        assert (
            client.get(
                "/api/v1/images/app/2.0.0/1/diff", params={"against": "web@1.0.0/1"}, headers=auth
            ).status_code
            == 404
        )
        client.cookies.set("kiln_session", token)
        assert "web@1.0.0/1" not in client.get("/", params={"package": "openssl"}).text
        assert client.get("/images/web/1.0.0/1").status_code == 404
        # The image's own record names its parent; the hidden parent is neither linked nor shown.
        assert 'href="/images/web/1.0.0/1"' not in client.get("/images/app/2.0.0/1").text


def test_bad_image_pattern_is_refused(home: Seeded) -> None:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog, pytest.raises(KilnError, match="invalid image pattern"):
        create_token(catalog, server_secret(store.home), "x", ["images:read"], None, images=["../*"])
