"""``kiln events`` and ``kiln webhooks`` through the real CLI (a fresh process each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kiln.catalog import Catalog
from kiln.events import model
from kiln.events.emit import emit
from kiln.store import Store
from tests.events.conftest import Receiver
from tests.loopback import free_port


def kiln(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "KILN_HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True, env=full, timeout=60
    )


def test_events_and_webhooks_commands(tmp_path: Path, receiver: Receiver, secret: str) -> None:
    home = tmp_path / "home"
    refused = kiln(home, "webhooks", "add", receiver.url, "--secret-env", "KILN_TEST_HOOK_SECRET")
    assert refused.returncode == 2 and "--allow-private" in refused.stderr
    both = kiln(home, "webhooks", "add", receiver.url, "--secret-env", "A", "--secret-file", "/x")
    assert both.returncode == 2 and "exactly one of" in both.stderr
    bad_type = kiln(
        home, "webhooks", "add", receiver.url, "--secret-env", "A", "--type", "Build!", "--allow-private"
    )
    assert bad_type.returncode == 2 and "invalid event type pattern" in bad_type.stderr
    added = kiln(
        home,
        "webhooks",
        "add",
        receiver.url,
        "--secret-env",
        "KILN_TEST_HOOK_SECRET",
        "--type",
        "build.*",
        "--allow-private",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["secret"] == "env:KILN_TEST_HOOK_SECRET"
    listed = kiln(home, "webhooks", "list", "--json")
    assert [h["types"] for h in json.loads(listed.stdout)] == [["dev.kiln.build.*"]]
    assert secret not in listed.stdout

    with Catalog.open(Store.open(home).database_url) as catalog:
        emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
        emit(catalog, model.image_recorded("web", "1.0.0", 1, "sha256:" + "0" * 64, "ab" * 16))
    shown = kiln(home, "events", "--json", "--type", "image.*")
    assert [json.loads(line)["type"] for line in shown.stdout.splitlines()] == [model.IMAGE_RECORDED]
    text = kiln(home, "events", "--since", "1h")
    assert (
        "build.started builds/" + "ab" * 16 in text.stdout
        and "image.recorded images/web@1.0.0/1" in text.stdout
    )
    assert kiln(home, "events", "--since", "soon").returncode == 2

    dispatched = kiln(home, "webhooks", "dispatch", "--once")
    assert dispatched.returncode == 0 and "1 deliveries attempted" in dispatched.stdout
    assert len(receiver.requests) == 1
    log = json.loads(kiln(home, "webhooks", "deliveries", "--json").stdout)
    assert [(d["status"], d["log"][0]["status_code"]) for d in log] == [("delivered", 200)]
    assert kiln(home, "webhooks", "deliveries", "--failed", "--json").stdout.strip() == "[]"
    again = kiln(home, "webhooks", "redeliver", str(log[0]["id"]))
    assert again.returncode == 0 and f"redelivery of {log[0]['id']}" in again.stdout
    assert "1 deliveries attempted" in kiln(home, "webhooks", "dispatch", "--once").stdout
    assert len(receiver.requests) == 2
    assert kiln(home, "webhooks", "redeliver", "99").returncode == 1
    assert kiln(home, "webhooks", "remove", "1").returncode == 0
    assert kiln(home, "webhooks", "remove", "1").returncode == 1
    assert json.loads(kiln(home, "webhooks", "deliveries", "--json").stdout) == []


def test_events_follow_streams_new_events(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    with Catalog.open(store.database_url) as catalog:
        emit(catalog, model.build_event("started", "0" * 32, "old", "1.0.0"))
        env = {**os.environ, "KILN_HOME": str(home)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiln.cli.main", "events", "--follow", "--json", "-n", "1"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["subject"] == "builds/" + "0" * 32
            emit(catalog, model.build_event("succeeded", "1" * 32, "new", "1.0.0"))
            assert json.loads(proc.stdout.readline())["type"] == model.BUILD_SUCCEEDED
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_kiln_serve_delivers_webhooks(tmp_path: Path, receiver: Receiver, secret: str) -> None:

    home = tmp_path / "home"
    assert (
        kiln(
            home, "webhooks", "add", receiver.url, "--secret-env", "KILN_TEST_HOOK_SECRET", "--allow-private"
        ).returncode
        == 0
    )
    port = free_port()
    env = {**os.environ, "KILN_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "kiln.cli.main", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        with Catalog.open(Store.open(home).database_url) as catalog:
            emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert len(receiver.requests) == 1, (
            server.stderr.read() if server.poll() is not None else "no delivery"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
