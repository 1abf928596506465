"""The catalog's newer features through the API, on a real SQLite catalog: fleet filters, labels,
lifecycle states with their history, the lineage graph, the full diff, pipelines, channels and the
registry. Every write is checked in the catalog and in the audit log, and refusals carry the CLI's
messages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token, list_tokens
from kiln.api import ApiConfig, create_app
from kiln.catalog import Catalog
from kiln.evidence.signing import generate_key
from kiln.lifecycle.states import history
from kiln.settings import Settings
from kiln.store import Store
from tests.api.seed import Seeded, record_image, seed

POLICY = "version: 1\nchannels: [dev, staging, prod]\npolicies:\n  staging: {compliance_min: 95}\n"
COMPONENT = """\
name: hello
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Hello
        action: ExecuteBash
        inputs: {commands: [echo hello]}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    seeded = seed(tmp_path_factory.mktemp("lifecycle-home"))
    store = Store.open_at(seeded.home, seeded.home / "cache")
    with Catalog.open(store.database_url) as catalog:  # two versions without artifacts, for the diff
        record_image(catalog, store, "base", "1.0.0", "debian:bookworm", full=False)
        record_image(catalog, store, "child", "1.0.0", "kiln:base@1.x", full=False)
    (seeded.home / "promotion-policy.yaml").write_text(POLICY)
    return seeded


@pytest.fixture(scope="module")
def client(home: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    key = tmp_path_factory.mktemp("keys") / "kiln.key"
    generate_key(key)
    config = ApiConfig(data_dir=home.home, settings=Settings(signing_key=key))
    with TestClient(create_app(config), base_url="http://127.0.0.1") as c:
        yield c


def token(home: Seeded, name: str, *scopes: str) -> dict[str, str]:
    """A new token (names are unique: a repeated name gets a suffix)."""
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        taken = {t.name for t in list_tokens(catalog)}
        unique = next(n for n in (name, *(f"{name}-{i}" for i in range(1, 100))) if n not in taken)
        secret, _ = create_token(catalog, server_secret(store.home), unique, list(scopes), None)
    return {"Authorization": f"Bearer {secret}"}


def last_audit(client: TestClient, home: Seeded) -> dict[str, object]:
    record: dict[str, object] = client.get(
        "/api/v1/audit", params={"limit": 1}, headers=token(home, "auditor", "admin")
    ).json()[0]
    return record


def refs(answer: dict[str, list[dict[str, object]]]) -> list[object]:
    return [item["ref"] for item in answer["items"]]


def test_fleet_filters_combine_and_page(client: TestClient, home: Seeded) -> None:
    read = token(home, "reader", "images:read")
    get = lambda **q: client.get("/api/v1/images", params=q, headers=read)  # noqa: E731
    assert refs(get(label="team=payments").json()) == ["web@1.0.0/1"]
    assert refs(get(label=["team=payments", "team=payments"]).json()) == ["web@1.0.0/1"]
    twice = get(label=["team=payments", "team=other"]).json()
    assert twice["detail"] == "label 'team' is given twice with different values"
    assert refs(get(package="openssl<3.0.14-1~deb12u1", parent="web@1.0.0/1").json()) == ["app@2.0.0/1"]
    assert refs(get(package="openssl>=3.0.14").json()) == []
    hit = get(package="libssl3", name="web").json()["items"][0]
    assert [p["name"] for p in hit["packages"]] == ["libssl3"] and hit["labels"] == {"team": "payments"}
    first = get(package="openssl", limit=3).json()
    assert refs(first) == ["app@2.0.0/1", "base@1.0.0/1", "child@1.0.0/1"] and first["next_cursor"] == "3"
    last = get(package="openssl", limit=3, cursor=first["next_cursor"]).json()
    assert refs(last) == ["web@1.0.0/1"] and last["next_cursor"] is None
    # The CLI's messages, as 400 problems.
    bad = get(package="openssl<<<").json()
    assert bad["status"] == 400 and bad["detail"] == "invalid package filter 'openssl<<<'"
    assert get(label="nolabel").json()["detail"] == "invalid label 'nolabel': expected KEY=VALUE"
    assert get(cve="not a cve").json()["detail"] == "invalid vulnerability id 'not a cve'"
    assert get(state="gone").status_code == 422


def test_outdated_filter_says_why(client: TestClient, home: Seeded) -> None:
    read = token(home, "reader2", "images:read")
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        record_image(catalog, store, "base", "1.0.1", "debian:bookworm", full=False)
    found = client.get("/api/v1/images", params={"outdated": "true"}, headers=read).json()["items"]
    assert [(i["ref"], bool(i["outdated"])) for i in found] == [("child@1.0.0/1", True)]
    combined = {"outdated": "true", "parent": "kiln:base@1.x", "state": "active"}
    found = client.get("/api/v1/images", params=combined, headers=read).json()["items"]
    assert [(i["ref"], bool(i["outdated"])) for i in found] == [("child@1.0.0/1", True)]
    combined["state"] = "deprecated"
    assert client.get("/api/v1/images", params=combined, headers=read).json()["items"] == []
    detail = client.get("/api/v1/images/child/1.0.0/1", headers=read).json()
    assert detail["outdated"]["newer"] == "base@1.0.1/1" and "1.0.1" in detail["outdated"]["reason"]


def test_labels_are_written_audited_and_checked(client: TestClient, home: Seeded) -> None:
    write = token(home, "labeller", "images:write")
    url = "/api/v1/images/web/1.0.0/1/labels/example.com/tier"
    answer = client.put(url, json={"value": "gold"}, headers=write)
    assert answer.status_code == 200
    assert answer.json() == {
        "image": "web@1.0.0/1",
        "labels": {"example.com/tier": "gold", "team": "payments"},
    }
    audit = last_audit(client, home)
    assert audit["actor"].startswith("labeller ") and audit["target"] == "web@1.0.0/1 label example.com/tier"  # type: ignore[attr-defined]
    assert (
        client.get("/api/v1/images", params={"label": "example.com/tier=gold"}, headers=write).status_code
        == 403
    )
    assert client.delete(url, headers=write).json()["labels"] == {"team": "payments"}
    missing = client.delete(url, headers=write).json()
    assert missing["status"] == 404 and missing["detail"] == "web@1.0.0/1 has no label example.com/tier"
    bad = client.put("/api/v1/images/web/1.0.0/1/labels/Bad Key", json={"value": "x"}, headers=write).json()
    assert bad["status"] == 400 and bad["detail"].startswith("invalid label key 'Bad Key'")


def test_state_changes_name_the_token_and_refuse_illegal_moves(client: TestClient, home: Seeded) -> None:
    write = token(home, "release-bot", "images:write")
    url = "/api/v1/images/base/1.0.0/1/state"
    moved = client.post(url, json={"state": "deprecated", "reason": "superseded by 1.0.1"}, headers=write)
    assert moved.status_code == 200
    assert moved.json()["from_state"] == "active" and moved.json()["actor"] == "release-bot"
    again = client.post(url, json={"state": "deprecated", "reason": "twice"}, headers=write).json()
    assert again["status"] == 409 and again["detail"] == "base@1.0.0/1 is already deprecated"
    retired = client.post(url, json={"state": "retired", "reason": "end of life"}, headers=write)
    assert retired.status_code == 200 and retired.json()["retire"] is not None
    final = client.post(url, json={"state": "active", "reason": "undo"}, headers=write).json()
    assert (
        final["status"] == 409 and final["hint"] == "retired is final; rebuild the recipe for a new version"
    )
    assert client.post(url, json={"state": "active", "reason": ""}, headers=write).status_code == 422
    read = token(home, "reader3", "images:read")
    shown = client.get("/api/v1/images/base/1.0.0/1/history", headers=read).json()
    assert [(c["to_state"], c["actor"], c["reason"]) for c in shown] == [
        ("deprecated", "release-bot", "superseded by 1.0.1"),
        ("retired", "release-bot", "end of life"),
    ]
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        assert [c.to_state for c in history(catalog, "base@1.0.0/1")] == ["deprecated", "retired"]
    assert last_audit(client, home)["status"] == 422


def test_lineage_graph_and_full_diff(client: TestClient, home: Seeded) -> None:
    read = token(home, "reader4", "images:read")
    graph = client.get("/api/v1/images/app/2.0.0/1/lineage", headers=read).json()
    assert graph["focus"] == "app@2.0.0/1"
    assert [(e["parent"], e["child"]) for e in graph["edges"]] == [
        ("web@1.0.0/1", "app@2.0.0/1"),
        ("debian:bookworm", "web@1.0.0/1"),
    ]
    diff = client.get(
        "/api/v1/images/child/1.0.0/1/diff/full", params={"against": "base@1.0.0/1"}, headers=read
    )
    assert diff.status_code == 200
    body = diff.json()
    assert body["old"] == "base@1.0.0/1" and body["new"] == "child@1.0.0/1" and body["files"] is None
    assert body["packages"] == {"added": [], "removed": [], "upgraded": [], "downgraded": []}
    assert body["cves"]["note"]  # no vulnerability database here: says why nothing was compared
    summary = client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": "web@1.0.0/1"}, headers=read)
    assert set(summary.json()) == {
        "old",
        "new",
        "added",
        "removed",
        "changed",
        "components_old",
        "components_new",
    }


def test_pipelines_show_run_disable(client: TestClient, home: Seeded) -> None:
    read = token(home, "pipe-reader", "builds:read")
    listed = client.get("/api/v1/pipelines", headers=read).json()["items"]
    assert [(p["name"], p["image"], p["enabled"]) for p in listed] == [("web-nightly", "web", True)]
    assert listed[0]["next_run"] is not None and listed[0]["last_run"]["status"] == "skipped"
    shown = client.get("/api/v1/pipelines/web-nightly", headers=read).json()
    assert (
        shown["last_scheduled_skip"]["reason"] == "no parent, component or CVE changed since the last build"
    )
    runner = token(home, "runner", "pipelines:run")
    queued = client.post(
        "/api/v1/pipelines/web-nightly/runs", json={"params": {"Greeting": "moin"}}, headers=runner
    )
    assert queued.status_code == 202
    run = queued.json()
    assert run["status"] == "queued" and run["trigger"] == {
        "type": "manual",
        "cause": "api token runner --param Greeting=moin",
    }
    refused = client.post("/api/v1/pipelines/web-nightly/runs", json={"params": {"Greeting": "servus"}},
                          headers=runner).json()  # fmt: skip
    assert refused["status"] == 422 and "'servus' is not one of the allowed values" in refused["detail"]
    page = client.get("/api/v1/pipelines/web-nightly/runs", params={"limit": 1}, headers=read).json()
    assert [r["id"] for r in page["items"]] == [run["id"]] and page["next_cursor"] == "1"
    writer = token(home, "pipe-writer", "pipelines:write")
    off = client.post("/api/v1/pipelines/web-nightly/disable", headers=writer).json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled through the API by pipe-writer"
    assert client.get("/api/v1/pipelines/web-nightly", headers=read).json()["next_run"] is None
    assert client.post("/api/v1/pipelines/web-nightly/enable", headers=writer).json()["enabled"] is True
    assert client.get("/api/v1/pipelines/nope", headers=read).json()["detail"] == "no pipeline 'nope'"


def test_promotion_needs_the_channel_scope_and_records_denials(client: TestClient, home: Seeded) -> None:
    dev_only = token(home, "dev-promoter", "channels:promote:dev")
    body = {"ref": "app@2.0.0/1"}
    assert client.post("/api/v1/channels/staging/promotions", json=body, headers=dev_only).status_code == 403
    promoted = client.post("/api/v1/channels/dev/promotions", json=body, headers=dev_only)
    assert promoted.status_code == 201
    assert promoted.json()["allowed"] is True and promoted.json()["who"] == "dev-promoter (api token)"
    assert promoted.json()["envelope"]  # signed
    staging = token(home, "staging-promoter", "channels:promote:staging")
    denied = client.post("/api/v1/channels/staging/promotions", json=body, headers=staging).json()
    assert denied["status"] == 409 and "compliance" in denied["detail"] and "denied" in denied["detail"]
    read = token(home, "channel-reader", "images:read")
    pointers = client.get("/api/v1/channels", headers=read).json()["items"]
    assert {p["image_name"]: p["channels"]["dev"] for p in pointers} == {
        "app": "app@2.0.0/1",
        "web": "web@1.0.0/1",
    }
    decisions = client.get("/api/v1/channels/history", params={"name": "app"}, headers=read).json()["items"]
    assert [(d["channel"], d["allowed"]) for d in decisions] == [("dev", True), ("staging", False)]
    by_channel = client.post(
        "/api/v1/channels/staging/promotions", json={"ref": "kiln:app@dev"}, headers=staging
    )
    assert (
        by_channel.status_code == 409 and "app@2.0.0/1" in by_channel.json()["detail"]
    )  # what dev points at
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        secret, _ = create_token(catalog, server_secret(store.home), "web-promoter",
                                 ["channels:promote:staging"], None, images=["web"])  # fmt: skip
    hidden = {"Authorization": f"Bearer {secret}"}
    unseen = client.post(
        "/api/v1/channels/staging/promotions", json={"ref": "app@dev"}, headers=hidden
    ).json()
    assert unseen["status"] == 404 and unseen["detail"] == "no image app@dev"


def test_registry_publish_show_and_conflict(client: TestClient, home: Seeded) -> None:
    publisher = token(home, "publisher", "registry:write")
    doc = {"document": COMPONENT, "version": "1.0.0"}
    first = client.post("/api/v1/registry/components", json=doc, headers=publisher)
    assert first.status_code == 201 and first.json()["created"] is True
    assert client.post("/api/v1/registry/components", json=doc, headers=publisher).status_code == 200
    other = {"document": COMPONENT.replace("echo hello", "echo bye"), "version": "1.0.0"}
    conflict = client.post("/api/v1/registry/components", json=other, headers=publisher).json()
    assert conflict["status"] == 409 and "published versions are immutable" in conflict["detail"]
    assert "uploads" not in conflict["detail"]  # the server's upload folder is not shown
    invalid = client.post("/api/v1/registry/components", json={"document": "name: x\nphases: []\n"},
                          headers=publisher).json()  # fmt: skip
    assert invalid["status"] == 422 and all(e.startswith("component.yaml:") for e in invalid["errors"])
    read = token(home, "registry-reader", "images:read")
    shown = client.get("/api/v1/registry/components/hello", params={"version": "1.x"}, headers=read).json()
    assert shown["component"]["published_by"] == "api token publisher" and shown["document"] == COMPONENT
    assert not list((home.home / "uploads").glob("*/component.yaml"))  # uploads are removed
    assert client.post("/api/v1/registry/components", json=doc, headers=read).status_code == 403


def test_registry_deprecation_is_scoped_audited_and_shown(client: TestClient, home: Seeded) -> None:
    publisher = token(home, "deprecator", "registry:write")
    for version in ("1.0.0", "1.1.0"):
        document = COMPONENT.replace("name: hello", "name: hello2").replace("echo hello", f"echo {version}")
        body = {"document": document, "version": version}
        assert client.post("/api/v1/registry/components", json=body, headers=publisher).status_code == 201
    url = "/api/v1/registry/components/hello2/deprecate"
    reader = token(home, "registry-reader", "images:read")
    assert client.post(url, json={"version": "1.1.0", "reason": "no"}, headers=reader).status_code == 403
    done = client.post(url, json={"version": "1.1.0", "reason": "broken motd"}, headers=publisher)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "deprecated" and done.json()["deprecated_by"] == "api token deprecator"
    audit = last_audit(client, home)
    assert audit["action"] == "POST " + url and audit["target"] == "component hello2@1.1.0"
    assert audit["status"] == 200 and str(audit["actor"]).startswith("deprecator ")
    again = client.post(url, json={"version": "1.1.0", "reason": "other"}, headers=publisher).json()
    assert again["deprecation_reason"] == "broken motd"  # a no-op: the first reason stays
    latest = client.get("/api/v1/registry/components/hello2", headers=reader).json()["component"]
    assert latest["version"] == "1.0.0"  # latest prefers the active version
    missing = client.post(url, json={"version": "9.0.0", "reason": "x"}, headers=publisher)
    assert missing.status_code == 404 and missing.json()["detail"] == "no component hello2@9.0.0"
    assert client.post(url, json={"version": "1.0.0", "reason": "  "}, headers=publisher).status_code == 422


def test_a_published_recipe_cannot_name_the_servers_files(client: TestClient, home: Seeded) -> None:
    publisher = token(home, "recipe-publisher", "registry:write")
    recipe = (
        "name: sneaky\nversion: 1.0.0\nparent: {image: 'debian:bookworm'}\ncomponents: [update-os]\n"
        "secrets:\n  - {name: shadow, source: 'file:/etc/shadow'}\n"
    )
    refused = client.post("/api/v1/registry/recipes", json={"recipe": recipe}, headers=publisher).json()
    assert refused["status"] == 400 and refused["detail"].startswith("recipe refused: secrets:")
    assert (
        client.get("/api/v1/registry/recipes", params={"name": "sneaky"}, headers=publisher).status_code
        == 403
    )
    read = token(home, "recipe-reader", "images:read")
    assert (
        client.get("/api/v1/registry/recipes", params={"name": "sneaky"}, headers=read).json()["items"] == []
    )


def test_image_patterns_bound_writes_too(client: TestClient, home: Seeded) -> None:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        secret, _ = create_token(catalog, server_secret(store.home), "team-app-writer",
                                 ["images:write", "pipelines:run", "builds:read"], None, images=["app*"])  # fmt: skip
    auth = {"Authorization": f"Bearer {secret}"}
    hidden = client.put("/api/v1/images/web/1.0.0/1/labels/team", json={"value": "x"}, headers=auth).json()
    assert hidden["status"] == 404 and hidden["detail"] == "no image web@1.0.0/1"
    state = client.post(
        "/api/v1/images/web/1.0.0/1/state", json={"state": "disabled", "reason": "x"}, headers=auth
    )
    assert state.status_code == 404
    assert (
        client.post("/api/v1/pipelines/web-nightly/runs", headers=auth).json()["detail"]
        == "no pipeline 'web-nightly'"
    )
    assert client.get("/api/v1/pipelines", headers=auth).json()["items"] == []
    own = client.put("/api/v1/images/app/2.0.0/1/labels/team", json={"value": "app"}, headers=auth)
    assert own.status_code == 200 and own.json()["labels"] == {"team": "app"}
