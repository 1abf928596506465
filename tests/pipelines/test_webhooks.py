"""``kiln daemon`` delivers webhooks like ``kiln serve`` (a real receiver on 127.0.0.1), and does not
with ``--no-webhooks``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kiln.catalog import Catalog
from kiln.events.emit import emit
from kiln.events.model import pipeline_run_skipped
from kiln.store import Store
from tests.events.conftest import Receiver, receiver, secret  # noqa: F401  (fixtures)


def kiln(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=True)  # fmt: skip


def skipped(home: Path, reason: str) -> None:
    with Catalog.open(Store.open(home).database_url) as catalog:
        emit(catalog, pipeline_run_skipped("web", reason, run_id="1" * 32))


def test_the_daemon_delivers_webhooks_unless_told_not_to(
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811
    secret: str,  # noqa: F811
) -> None:
    home = tmp_path / "home"
    kiln(home, "webhooks", "add", receiver.url, "--secret-env", "KILN_TEST_HOOK_SECRET", "--allow-private",
         "--pipeline", "web")  # fmt: skip
    skipped(home, "no updates")
    daemon = subprocess.Popen([sys.executable, "-m", "kiln.cli.main", "daemon"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env={**os.environ, "KILN_HOME": str(home)})  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.1)
        [delivered] = receiver.requests
        event = json.loads(delivered.body)
        assert event["type"] == "dev.kiln.pipeline.run-skipped" and event["pipeline"] == "web"
        assert delivered.headers["webhook-signature"].startswith("v1,")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, daemon.stderr.read() if daemon.stderr else ""
    skipped(home, "disabled")
    kiln(home, "daemon", "--once", "--no-webhooks")
    assert len(receiver.requests) == 1
    pending = json.loads(kiln(home, "webhooks", "deliveries", "--json").stdout)
    assert sorted(d["status"] for d in pending) == ["delivered", "pending"]
