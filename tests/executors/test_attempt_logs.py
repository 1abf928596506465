"""A retried queued build's log, read from another machine: the follower (``kiln builds show ID --log
--follow`` and the API's live log) moves to the new attempt's log as soon as the attempt is claimed,
marks the change, and prints every line of it; earlier attempts' logs stay readable on request
(``--attempt N``). The catalog's real queue rows (on SQLite and PostgreSQL) and a shared store directory
stand in for the workers: the test ships the logs and moves the attempts itself, at chosen moments."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.api.app import create_app
from kiln.api.config import ApiConfig
from kiln.capabilities import Capabilities
from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.objectstore import ObjectStore, open_object_store
from kiln.settings import Settings
from kiln.shippedlogs import LogShipper, current_attempt, end_key, log_file
from kiln.store import Store
from tests.executors.test_queue import KILN, env_for


class RetriedBuild:
    """A queued build whose attempts the test drives: each attempt writes its log on a 'worker' data
    directory of its own and ships it, as a worker does."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root
        self.shared_url = str(root / "shared-store")
        self.shared: ObjectStore = open_object_store(self.shared_url, root / "scratch")
        self.id = uuid.uuid4().hex
        self.catalog = Catalog.open(url)
        with self.catalog.session(write=True) as s, s.begin():
            jobs.add_queued(s, build_id=self.id, recipe_name="retried", recipe_version="1.0.0",
                            recipe_path="/recipes/retried.yaml", queue="builds.amd64",
                            needs=Capabilities(arch="amd64"), max_attempts=2, queueing_lock=None)  # fmt: skip
        self.shippers: dict[int, LogShipper] = {}

    def claim(self, worker: str) -> int:
        attempt = jobs.claim(self.catalog, self.id, worker)
        assert attempt is not None
        self.shippers[attempt] = LogShipper(self.shared, self.id, attempt)
        return attempt

    def log(self, attempt: int, *lines: str) -> None:
        path = self.root / f"worker-{attempt}" / "logs" / f"{self.id}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            for line in lines:
                fh.write(json.dumps({"kind": "output", "message": line}) + "\n")
        self.shippers[attempt].ship(path)

    def lose_and_retry(self) -> None:
        assert jobs.requeue_lost(self.catalog, self.id, "worker lost (no heartbeat for 3s)")
        assert self.claim("worker-b") == 2

    def end(self, attempt: int) -> None:
        jobs.end_attempt(self.catalog, self.id, attempt, "failed", "the step failed")
        done = json.dumps({"bytes": self.shippers[attempt].offset}).encode()
        self.shared.put_named(end_key(self.id, attempt), done)


A1 = [f"first-attempt line {n}" for n in range(1, 6)]
A2 = [f"second-attempt line {n}" for n in range(1, 4)]


@pytest.fixture(params=["sqlite", "postgresql"])
def build(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RetriedBuild]:
    url = (
        f"sqlite:///{tmp_path / 'catalog.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("queue_url")
    )
    retried = RetriedBuild(url, tmp_path)
    try:
        yield retried
    finally:
        retried.catalog.close()


def kiln(build: RetriedBuild, home: Path, *args: str) -> list[str]:
    return [str(KILN), "builds", "show", build.id, "--log", *args]


def env(build: RetriedBuild, home: Path) -> dict[str, str]:
    return {**env_for(build.url, home), "KILN_STORE_URL": build.shared_url, "COLUMNS": "200"}


def test_the_reader_picks_the_claimed_attempt_before_it_shipped_anything(
    build: RetriedBuild, tmp_path: Path
) -> None:
    build.claim("worker-a")
    build.log(1, *A1)
    build.lose_and_retry()  # attempt 2 claimed; its worker has shipped nothing yet
    reader = Store.open(tmp_path / "reader", Settings(database_url=build.url, store_url=build.shared_url))
    record = build.catalog.get_build(build.id)
    assert current_attempt(build.catalog, build.id) == 2
    assert log_file(reader, record, 2).read_text() == ""  # attempt 2's (empty) log, not attempt 1's
    assert log_file(reader, record).name == f"{build.id}-1.jsonl"  # the latest shipped, without the catalog
    build.log(2, *A2)
    assert [json.loads(x)["message"] for x in log_file(reader, record, 2).read_text().splitlines()] == A2


def test_cli_follower_moves_to_the_retry_and_earlier_attempts_stay_readable(
    build: RetriedBuild, tmp_path: Path
) -> None:
    build.claim("worker-a")
    build.log(1, *A1)
    follower = subprocess.Popen(kiln(build, tmp_path / "reader", "--follow"), env=env(build, tmp_path / "reader"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert follower.stdout is not None
    out: list[str] = []
    for line in follower.stdout:  # the first attempt's lines, live
        out.append(line)
        if A1[-1] in line:
            break
    build.lose_and_retry()
    build.log(2, *A2[:2])  # fewer lines than attempt 1 printed: none may be skipped
    time.sleep(1.5)
    build.log(2, A2[2])
    build.end(2)
    rest, err = follower.communicate(timeout=60)
    text = "".join(out) + rest
    assert follower.returncode == 0, err
    banner = text.index(f"--- attempt 2 of build {build.id}")
    assert "attempt 1 lost (worker lost (no heartbeat for 3s))" in text[banner:]
    assert all(text.index(line) < banner for line in A1)
    assert [text.index(line) > banner for line in A2] == [True] * 3, text
    assert text.count("first-attempt") == len(A1)  # attempt 1 is not printed again

    shown = subprocess.run(kiln(build, tmp_path / "cli"), env=env(build, tmp_path / "cli"),
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "first-attempt" not in shown.stdout and all(line in shown.stdout for line in A2)
    assert "--attempt N" in shown.stdout  # the banner says where the earlier logs are
    earlier = subprocess.run(kiln(build, tmp_path / "cli", "--attempt", "1", "--json"),
                             env=env(build, tmp_path / "cli"), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert earlier.returncode == 0, earlier.stderr
    assert [json.loads(x)["message"] for x in earlier.stdout.splitlines()] == A1
    missing = subprocess.run(kiln(build, tmp_path / "cli", "--attempt", "3"), env=env(build, tmp_path / "cli"),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 2 and "has no attempt 3 (its attempts: 1, 2)" in missing.stderr
    assert "Traceback" not in missing.stderr


def sse(text: str) -> list[tuple[str, str, str]]:
    """(event, id, data) of each frame."""
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            frames.append((fields.get("event", ""), fields.get("id", ""), fields.get("data", "")))
    return frames


def test_api_live_log_moves_to_the_retry(build: RetriedBuild, tmp_path: Path) -> None:
    build.claim("worker-a")
    build.log(1, *A1)
    settings = Settings(database_url=build.url, store_url=build.shared_url)
    app = create_app(ApiConfig(data_dir=tmp_path / "server", settings=settings, public_read=True))

    def driver() -> None:  # the retry and its end, while the API streams
        time.sleep(1.5)
        build.lose_and_retry()
        build.log(2, *A2[:2])
        time.sleep(1.0)
        build.log(2, A2[2])
        build.end(2)

    url = f"/api/v1/builds/{build.id}/log"
    with TestClient(app, base_url="http://127.0.0.1") as client:
        moving = threading.Thread(target=driver)
        moving.start()
        started = time.monotonic()
        followed = client.get(url, params={"follow": "true"})
        moving.join()
        assert followed.status_code == 200, followed.text
        assert time.monotonic() - started < 30
        frames = sse(followed.text)
        records = [
            (event, id_, json.loads(data)["message"]) for event, id_, data in frames if event == "record"
        ]
        assert [m for _, _, m in records] == A1 + A2
        assert ("attempt", "", '{"attempt": 2}') in frames
        assert frames.index(("attempt", "", '{"attempt": 2}')) == len(A1)  # between the two attempts' lines
        assert all(i.isdigit() for _, i, _ in records[: len(A1)])
        assert all(i.startswith("2.") for _, i, _ in records[len(A1) :])
        assert frames[-1] == ("end", "", '{"status": "failed"}')

        # Resuming: inside attempt 2, only what follows; with an attempt-1 id, attempt 2 from its start.
        after_first = records[len(A1)][1]
        resumed = sse(client.get(url, params={"follow": "true"}, headers={"Last-Event-ID": after_first}).text)
        assert [json.loads(d)["message"] for e, _, d in resumed if e == "record"] == A2[1:]
        stale = sse(client.get(url, params={"follow": "true"}, headers={"Last-Event-ID": records[2][1]}).text)
        assert stale[0] == ("attempt", "", '{"attempt": 2}')
        assert [json.loads(d)["message"] for e, _, d in stale if e == "record"] == A2
        plain = client.get(url)
        assert [json.loads(x)["message"] for x in plain.text.splitlines()] == A2
        first = client.get(url, params={"attempt": 1})
        assert [json.loads(x)["message"] for x in first.text.splitlines()] == A1
        assert client.get(url, params={"attempt": 2}).text == plain.text
        assert client.get(url, params={"attempt": 3}).status_code == 404
        assert client.get(url, params={"attempt": 1, "follow": "true"}).status_code == 422
