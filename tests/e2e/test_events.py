"""Events of real builds run by the local executor (as the API runs them): queued, started, then
succeeded + image recorded, or cancelled; and a webhook receives them, signed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from kiln.catalog import Catalog
from kiln.events import model
from kiln.events.dispatch import Dispatcher
from kiln.events.stream import page
from kiln.events.webhooks import SecretRef, WebhookConfig, add
from kiln.executors.local import LocalExecutor
from kiln.models import BuildRequest, RecipeSource
from kiln.settings import Settings
from kiln.store import Store
from tests.events.conftest import Receiver, receiver, secret

__all__ = ["receiver", "secret"]
pytestmark = pytest.mark.e2e

COMPONENT = """\
name: {name}
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Work
        action: ExecuteBash
        inputs:
          commands:
            - {command}
"""

RECIPE = """\
name: {name}
version: 0.1.0
parent: debian:bookworm
components:
  - path: {name}-step.yaml
"""


def request(folder: Path, home: Path, name: str, command: str) -> BuildRequest:
    (folder / f"{name}-step.yaml").write_text(COMPONENT.format(name=f"{name}-step", command=command))
    (folder / f"{name}.yaml").write_text(RECIPE.format(name=name))
    return BuildRequest(recipe=RecipeSource.read(folder / f"{name}.yaml"), data_dir=home)


def wait_finished(catalog: Catalog, build_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while (status := catalog.get_build(build_id).status) == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    return status


def test_real_builds_emit_their_events(tmp_path: Path, receiver: Receiver, secret: str) -> None:
    store = Store.open(tmp_path / "home", Settings.from_env())
    executor = LocalExecutor(store, Settings.from_env())
    with Catalog.open(store.database_url) as catalog:
        add(
            catalog,
            WebhookConfig(
                url=receiver.url,
                secret=SecretRef(kind="env", name="KILN_TEST_HOOK_SECRET"),
                types=["build.*", "image.*"],
                allow_private=True,
            ),
        )
        done = executor.submit(request(tmp_path, store.home, "tiny", "echo hi > /etc/tiny"))
        assert wait_finished(catalog, done.build_id) == "succeeded"
        slow = executor.submit(request(tmp_path, store.home, "slow", "sleep 600"))
        time.sleep(1)
        assert executor.cancel(slow.build_id)
        assert wait_finished(catalog, slow.build_id, timeout=120) == "failed"

        events = [e for _, e in page(catalog)]
        assert [(e.type, e.subject) for e in events] == [
            (model.BUILD_QUEUED, f"jobs/{done.job}"),
            (model.BUILD_STARTED, f"builds/{done.build_id}"),
            (model.BUILD_SUCCEEDED, f"builds/{done.build_id}"),
            (model.IMAGE_RECORDED, "images/tiny@0.1.0/1"),
            (model.BUILD_QUEUED, f"jobs/{slow.job}"),
            (model.BUILD_STARTED, f"builds/{slow.build_id}"),
            (model.BUILD_CANCELLED, f"builds/{slow.build_id}"),
        ]
        image = catalog.get_image("tiny@0.1.0/1")
        assert events[3].data["digest"] == image.digest and events[2].data["image"] == "tiny@0.1.0/1"

        assert Dispatcher(catalog).run_once() == 7
    verifier = StandardWebhook(secret)
    assert [verifier.verify(r.body, r.headers)["id"] for r in receiver.requests] == [e.id for e in events]
