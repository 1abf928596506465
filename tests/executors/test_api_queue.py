"""With a PostgreSQL catalog the API server queues builds (no process of its own runs them) and
cancels a waiting one at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.api.app import create_app
from kiln.api.config import ApiConfig
from kiln.catalog import Catalog
from kiln.executors.queue import QueueExecutor
from kiln.models import BuildRequest
from kiln.settings import Settings
from kiln.store import Store
from tests.documents import recipe_yaml
from tests.executors.test_queue import MOTD, recipe


def test_api_queues_and_cancels_on_postgresql(queue_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=queue_url)
    store = Store.open(tmp_path / "home", settings)
    with Catalog.open(queue_url) as catalog:
        token, _ = create_token(
            catalog, server_secret(store.home), "ci", ["builds:write", "builds:read"], None
        )
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(ApiConfig(data_dir=store.home, settings=settings))
    assert isinstance(app.state.executor, QueueExecutor)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        body = {
            "recipe": recipe_yaml("api-queued"),
            "components": {"motd.yaml": MOTD},
        }
        submitted = client.post("/api/v1/builds", json=body, headers=auth)
        assert submitted.status_code == 202, submitted.text
        build_id = submitted.json()["build_id"]
        assert client.get(f"/api/v1/builds/{build_id}", headers=auth).json()["status"] == "queued"
        bad = client.post("/api/v1/builds", json={"recipe": "name: x\nversion: 1.0.0\n"}, headers=auth)
        assert bad.status_code == 422, bad.text  # refused before anything is queued
        cancelled = client.post(f"/api/v1/builds/{build_id}/cancel", headers=auth)
        assert cancelled.status_code == 202, cancelled.text
        build = client.get(f"/api/v1/builds/{build_id}", headers=auth).json()
        assert (build["status"], build["error"]) == ("failed", "cancelled")
    with Catalog.open(queue_url) as catalog:
        assert [b.recipe_name for b in catalog.list_builds()] == ["api-queued"]  # nothing phantom


def test_job_and_build_row_commit_together(
    queue_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after Procrastinate inserted the job (before commit) leaves neither the job nor the
    build: they are one transaction on one connection."""
    executor = QueueExecutor(queue_url, Settings())
    request = BuildRequest(recipe=recipe(tmp_path / "r", "atomic", "motd.yaml", MOTD), data_dir=tmp_path)
    real = executor.app.configure_task

    def configure_then_fail(*args: Any, **kwargs: Any) -> Any:
        deferrer = real(*args, **kwargs)

        class Failing:
            def defer(self, **task_kwargs: Any) -> int:
                job_id: int = deferrer.defer(**task_kwargs)
                assert job_id > 0  # the job row exists inside the transaction
                raise RuntimeError("the server died before commit")

        return Failing()

    monkeypatch.setattr(executor.app, "configure_task", configure_then_fail)
    with pytest.raises(RuntimeError, match="died before commit"):
        executor.submit(request)
    with Catalog.open(queue_url) as catalog, catalog.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 0
        assert catalog.list_builds() == []
    monkeypatch.undo()
    build_id = executor.submit(request).build_id  # and without the failure both are there
    with Catalog.open(queue_url) as catalog, catalog.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE args->>'build_id' = :b"), {"b": build_id}
            ).scalar()
            == 1
        )
        assert catalog.get_build(build_id).status == "queued"
