"""The local executor (SQLite, one machine: ``kiln serve``/``kiln daemon``) ships a build's log to
``KILN_STORE_URL`` while the build runs, with the queue worker's code: another data directory reads and
follows it from the store, as it would a queue worker's."""

from __future__ import annotations

import dataclasses
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.executors.local import LocalExecutor
from kiln.models import BuildRequest
from kiln.objectstore import open_object_store
from kiln.settings import Settings
from kiln.shippedlogs import end_key, log_file
from kiln.store import Store
from tests.documents import chatty_component
from tests.executors.test_queue import KILN, env_for, recipe, wait_for


@pytest.mark.e2e
def test_local_executor_ships_the_log_to_the_shared_store(tmp_path: Path) -> None:
    shared_url = str(tmp_path / "shared-store")
    settings = dataclasses.replace(Settings.from_env(), store_url=shared_url, database_url=None)
    server = Store.open(tmp_path / "server", settings)
    token = uuid.uuid4().hex
    source = recipe(
        tmp_path / "r",
        "local-chatty",
        "chatty.yaml",
        chatty_component(f"hello-from-local-{token}", "goodbye-from-local"),
    )
    build_id = (
        LocalExecutor(server, settings).submit(BuildRequest(recipe=source, data_dir=server.home)).build_id
    )
    shared = open_object_store(shared_url, tmp_path / "scratch")

    def shipped() -> bytes:
        return b"".join(
            shared.get_named(k) or b"" for k in shared.names(f"logs/{build_id}") if k.endswith("l")
        )

    with Catalog(server.database_url) as catalog:
        wait_for(lambda: f"hello-from-local-{token}".encode() in shipped(), 60, "the first line is shipped")
        assert catalog.get_build(build_id).status == "running"  # shipped while the build runs
        wait_for(lambda: catalog.get_build(build_id).status != "running", 300, "the build ends")
        build = catalog.get_build(build_id)
    assert build.status == "succeeded", build.error
    wait_for(lambda: shared.get_named(end_key(build_id, 1)) is not None, 15, "the end mark is shipped")
    assert all(k.startswith(f"logs/{build_id}/001/") for k in shared.names(f"logs/{build_id}"))

    # Another data directory (same catalog, the store) reads the mirror: the whole log, byte for byte.
    reader = Store.open(tmp_path / "reader", dataclasses.replace(settings, database_url=server.database_url))
    mirror = log_file(reader, build)
    assert mirror.is_relative_to(reader.home / "remote" / "logs")
    assert mirror.read_bytes() == Path(build.log_path).read_bytes()
    env = {**env_for(server.database_url, tmp_path / "cli"), "KILN_STORE_URL": shared_url}
    started = time.monotonic()
    shown = subprocess.run([str(KILN), "builds", "show", build_id, "--log", "--follow"], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert time.monotonic() - started < 15  # the end mark is there: no waiting for it
    assert shown.stdout.index(f"hello-from-local-{token}") < shown.stdout.index("goodbye-from-local")
    assert "never shipped" not in shown.stderr
