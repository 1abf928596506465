"""Read endpoints over a seeded catalog: images, package search, evidence, artifacts, builds, logs."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from kiln.catalog import Catalog, PackageRecord
from kiln.store import Store
from tests.api.conftest import make_client
from tests.api.seed import CVE, FIXED, Seeded, record_image, seed

WEB = "/api/v1/images/web/1.0.0/1"


def test_list_and_page(client: TestClient) -> None:
    body = client.get("/api/v1/images").json()
    assert [i["ref"] for i in body["items"]] == ["app@2.0.0/1", "web@1.0.0/1"]
    first = client.get("/api/v1/images", params={"limit": 1}).json()
    assert [i["ref"] for i in first["items"]] == ["app@2.0.0/1"]
    second = client.get("/api/v1/images", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [i["ref"] for i in second["items"]] == ["web@1.0.0/1"] and second["next_cursor"] is None
    bad = client.get("/api/v1/images", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/images", params={"cursor": "999"}).json() == {"items": [], "next_cursor": None}


def test_package_query_with_debian_version_bound(client: TestClient) -> None:
    hits = client.get("/api/v1/images", params={"package": "openssl"}).json()["items"]
    assert {h["ref"] for h in hits} == {"web@1.0.0/1", "app@2.0.0/1"}
    assert {p["name"] for p in hits[0]["packages"]} == {"libssl3", "openssl"}
    older = client.get("/api/v1/images", params={"package": "openssl", "below": FIXED}).json()["items"]
    assert len(older) == 2
    newer = client.get("/api/v1/images", params={"package": "openssl", "below": "3.0.0-1"}).json()["items"]
    assert newer == []
    assert client.get("/api/v1/images", params={"below": "1"}).status_code == 400
    invalid = client.get("/api/v1/images", params={"package": "openssl", "below": "!!"})
    assert invalid.status_code == 400 and "invalid Debian version" in invalid.json()["detail"]


def test_show_with_lineage_and_problem_for_unknown(client: TestClient) -> None:
    web = client.get(WEB).json()
    assert web["children"] == ["app@2.0.0/1"] and web["lineage"] == ["debian:bookworm"]
    app = client.get("/api/v1/images/app/2.0.0/1").json()
    assert app["lineage"] == ["web@1.0.0/1", "debian:bookworm"]
    missing = client.get("/api/v1/images/web/9.9.9/1")
    assert missing.status_code == 404
    problem = missing.json()
    assert problem["detail"] == "no image web@9.9.9/1" and "1.0.0/1" in problem["hint"]
    assert client.get("/api/v1/images/Web!/1.0.0/1").status_code == 422


def test_packages_and_evidence(client: TestClient) -> None:
    assert [p["name"] for p in client.get(WEB + "/packages", params={"q": "ssl"}).json()] == [
        "libssl3",
        "openssl",
    ]
    spdx = client.get(WEB + "/sbom")
    assert (
        spdx.headers["content-type"] == "application/spdx+json" and spdx.json()["spdxVersion"] == "SPDX-2.3"
    )
    assert client.get(WEB + "/sbom", params={"format": "cyclonedx"}).json()["bomFormat"] == "CycloneDX"
    finding = client.get(WEB + "/scan").json()["findings"][0]
    assert (finding["vuln_id"], finding["fixed"]) == (CVE, FIXED)
    assert client.get(WEB + "/compliance").json()["score"] == 87.5
    none = client.get(WEB + "/provenance")
    assert none.status_code == 404 and "no provenance-signed evidence" in none.json()["detail"]
    check = client.get(WEB + "/verification").json()
    assert check["verified"] is False and check["checks"][0]["skipped"] is True


def test_artifact_download_with_range(client: TestClient) -> None:
    whole = client.get(WEB + "/artifacts/1")
    assert whole.status_code == 200 and whole.content == bytes(range(256)) * 40
    part = client.get(WEB + "/artifacts/1", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    assert part.headers["content-range"] == "bytes 10-19/10240"
    assert client.get(WEB + "/artifacts/1", headers={"Range": "bytes=20000-"}).status_code == 416
    listing = client.get(WEB + "/artifacts/0").json()
    assert {f["path"] for f in listing} == {"index.json", "blobs/sha256/abc"}
    assert client.get(WEB + "/artifacts/0/files/blobs/sha256/abc").content == b"layer" * 100
    assert client.get(WEB + "/artifacts/7").status_code == 404


def test_artifact_paths_cannot_leave_the_artifact(client: TestClient, seeded: Seeded) -> None:
    secret = seeded.home / "catalog.db"
    assert secret.is_file()
    oci = next((seeded.home / "images/web").glob("1.0.0-*/oci"))
    (oci / "escape").symlink_to(secret)
    try:
        for path in ("../../../../catalog.db", "..%2f..%2fcatalog.db", "%2e%2e/%2e%2e/catalog.db",
                     "escape", "/etc/passwd", "blobs/../../../catalog.db", "blobs"):  # fmt: skip
            response = client.get(WEB + "/artifacts/0/files/" + path)
            assert response.status_code in (404, 422), path  # 422: the client normalised ".." away
            assert b"SQLite" not in response.content
    finally:
        (oci / "escape").unlink()


def test_builds_and_log(client: TestClient, seeded: Seeded) -> None:
    builds = client.get("/api/v1/builds").json()["items"]
    assert seeded.build_id in {b["id"] for b in builds}
    build = client.get(f"/api/v1/builds/{seeded.build_id[:10]}").json()
    assert build["status"] == "succeeded" and build["image"] == "web@1.0.0/1"
    log = client.get(f"/api/v1/builds/{seeded.build_id}/log")
    assert log.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in log.text.splitlines()]
    assert records[0]["build"] == seeded.build_id and records[-1]["kind"] == "end"
    with client.stream("GET", f"/api/v1/builds/{seeded.build_id}/log", params={"follow": "true"}) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        text = "".join(sse.iter_text())
    assert text.count("event: record") == 5 and 'event: end\ndata: {"status": "succeeded"}' in text
    assert client.get("/api/v1/builds/zzz").status_code == 422
    assert client.get("/api/v1/builds/abcdef").status_code == 404


def test_pages_equal_the_catalogs_full_answers(tmp_path: Path) -> None:
    """The API pages in SQL (only a page's images are loaded): pages put together are exactly the
    catalog's full list and package query, in the same order."""
    store = Store.open_at(tmp_path, tmp_path / "cache")
    with Catalog.open(store.database_url) as catalog:
        for i in range(7):
            record_image(catalog, store, f"img{i % 3}", f"1.{i}.0", "debian:bookworm", full=False)
        record_image(catalog, store, "img1", "1.1.0", "debian:bookworm", full=False)  # a second build
        full = [i.ref for i in catalog.list_images()]
        by_package = [(m.image.ref, m.packages) for m in catalog.images_with_package("openssl", FIXED)]
    assert len(full) == 8 and len(by_package) == 8
    with make_client(tmp_path, public_read=True) as client:
        for params, expected in (
            ({}, full),
            ({"package": "openssl", "below": FIXED}, [r for r, _ in by_package]),
        ):
            refs, cursor = [], None
            while True:
                body = client.get(
                    "/api/v1/images", params={**params, "limit": 3, **({"cursor": cursor} if cursor else {})}
                ).json()
                refs += [h["ref"] for h in body["items"]]
                if (cursor := body["next_cursor"]) is None:
                    break
            assert refs == expected
        first = client.get(
            "/api/v1/images", params={"package": "openssl", "below": FIXED, "limit": 1}
        ).json()["items"][0]
        assert [PackageRecord(**p) for p in first["packages"]] == by_package[0][1]


def test_diff_components_and_vulndb(client: TestClient) -> None:
    same = client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": "web@1.0.0/1"}).json()
    assert (same["old"], same["new"], same["added"], same["removed"], same["changed"]) == (
        "web@1.0.0/1",
        "app@2.0.0/1",
        [],
        [],
        [],
    )
    assert client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": "web@9.0.0/1"}).status_code == 404
    assert "update-os" in client.get("/api/v1/components").json()
    assert client.get("/api/v1/vulndb").json() == []


def test_cached_answers_follow_every_commit(tmp_path: Path) -> None:
    """Read answers are cached per catalog revision: a commit by any other connection (a build in
    another process, a raw state change) is seen by the very next request."""
    import sqlite3

    seeded = seed(tmp_path / "home")
    with make_client(seeded.home, public_read=True) as client:
        first = client.get("/api/v1/images").json()
        assert client.get("/api/v1/images").json() == first and client.app.state.cache._values  # type: ignore[attr-defined]
        assert "active" in client.get("/images/web/1.0.0/1").text
        store = Store.open_at(seeded.home, seeded.home / "cache")
        with Catalog.open(store.database_url) as catalog:
            record_image(catalog, store, "new", "1.0.0", "debian:bookworm", full=False)
        assert [i["ref"] for i in client.get("/api/v1/images").json()["items"]][1] == "new@1.0.0/1"
        with sqlite3.connect(seeded.home / "catalog.db") as raw:
            raw.execute("UPDATE images SET state = 'deprecated' WHERE name = 'web'")
        listed = client.get("/api/v1/images", params={"name": "web"}).json()["items"]
        assert listed[0]["image"]["state"] == "deprecated"
        assert "<dt>State</dt><dd>deprecated</dd>" in client.get("/images/web/1.0.0/1").text
