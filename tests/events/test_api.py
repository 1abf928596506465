"""``GET /api/v1/events``: polled with a cursor; tokens limited to some images see only their events."""

from __future__ import annotations

from pathlib import Path

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog
from kiln.events import model
from kiln.events.emit import emit
from kiln.store import Store
from tests.api.conftest import make_client


def test_events_endpoint(tmp_path: Path) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    with Catalog.open(store.database_url) as catalog:
        secret = server_secret(store.home)
        everything, _ = create_token(catalog, secret, "all", ["builds:read"], None)
        web_only, _ = create_token(catalog, secret, "web", ["builds:read"], None, images=["web*"])
        emit(catalog, model.build_event("started", "a" * 32, "web", "1.0.0"))
        emit(catalog, model.image_recorded("web", "1.0.0", 1, "sha256:" + "0" * 64, "a" * 32))
        emit(catalog, model.build_event("started", "b" * 32, "payroll", "1.0.0"))
        emit(catalog, model.pipeline_run_skipped("nightly", "no updates"))
    with make_client(store.home) as client:
        assert client.get("/api/v1/events").status_code == 401

        def get(token: str, **params: object) -> dict[str, object]:
            answer = client.get("/api/v1/events", params=params, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]

        full = get(everything)
        assert [e["type"] for e in full["items"]] == [  # type: ignore[union-attr]
            model.BUILD_STARTED,
            model.IMAGE_RECORDED,
            model.BUILD_STARTED,
            model.PIPELINE_RUN_SKIPPED,
        ]
        assert full["items"][0]["specversion"] == "1.0" and full["next_after"] == 4  # type: ignore[index]
        first = get(everything, limit=2, type="build.*")
        assert [e["subject"] for e in first["items"]] == ["builds/" + "a" * 32]  # type: ignore[union-attr]
        rest = get(everything, after=first["next_after"], type="build.*")
        assert [e["subject"] for e in rest["items"]] == ["builds/" + "b" * 32]  # type: ignore[union-attr]
        assert get(everything, after=4) == {"items": [], "next_after": 4}
        limited = get(web_only)
        assert [e["data"].get("name") or e["data"]["recipe"] for e in limited["items"]] == ["web", "web"]  # type: ignore[union-attr]
        assert limited["next_after"] == 4
        assert (
            client.get(
                "/api/v1/events", params={"type": "Bad!"}, headers={"Authorization": f"Bearer {everything}"}
            ).status_code
            == 422
        )
