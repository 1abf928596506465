"""The daemon's scheduled vulnerability-feed import (``kiln daemon --vulndb-source``), against a real
HTTP server on 127.0.0.1 serving the held-in synthetic tracker fixture, a real vulnerability database
and a real catalog, with a moved clock: a changed feed is imported (and sets off the cve trigger at
once), an unchanged one costs a 304 (also after a restart), and a failing server, an oversize or a
broken body leave the database as it was, logged, the daemon carrying on."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kiln.build.freshness import ImageUpdates
from kiln.catalog import Catalog, PackageRecord
from kiln.evidence.vulndb import SourceInfo, VulnDb
from kiln.pipelines.checks import CatalogChanges
from kiln.pipelines.cvetrigger import CveTrigger
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.load import load_pipelines
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.pipelines.vulnfeed import VulnFeed
from kiln.rootfs.archive import SuiteState
from kiln.rootfs.updates import Update, UpdatesReport
from kiln.store import Store
from tests.catalog.conftest import new_image
from tests.pipelines.conftest import CatalogRunner, FakeClock

FIXTURE = Path(__file__).parents[1] / "fixtures/vuln/synthetic/tracker-base-passwd.json"
EVERY = timedelta(hours=6)
STATE = SuiteState(url="http://127.0.0.1:9/debian", suite="bookworm", date=1764547200, sha256="a" * 64)
# the image has the version that fixes the fixture's CVE-1999-92001: only a later record affects it
PASSWD = PackageRecord(name="base-passwd", version="3.6.1+kiln2", architecture="amd64")
PIPELINE = "name: web\nrecipe: web.yaml\ntriggers: [cve, manual]\ncve_severity: high\n"
RECIPE = "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - path: marker.yaml\n"
COMPONENT = "name: marker\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: M\n" \
            "        action: CreateFile\n        inputs:\n          - path: /m\n            content: x\n"  # fmt: skip


def changed_feed() -> bytes:
    """The fixture with a second (SYNTHETIC) base-passwd record, fixed in 3.6.1+kiln3."""
    doc = json.loads(FIXTURE.read_text())
    doc["base-passwd"]["CVE-1999-92002"] = {"description": "SYNTHETIC", "scope": "local", "releases": {
        "bookworm": {"status": "resolved", "repositories": {}, "fixed_version": "3.6.1+kiln3", "urgency": "high"}}}  # fmt: skip
    return json.dumps(doc).encode()


@dataclass
class Feed:
    """What the server answers: ``body`` with an ETag (304 to a matching If-None-Match), or ``status``."""

    body: bytes = field(default_factory=FIXTURE.read_bytes)
    status: int = 200
    length: bool = True  # send Content-Length (else the body ends with the connection)
    served: list[int] = field(default_factory=list)
    asked: list[dict[str, str]] = field(default_factory=list)  # each request's conditional headers

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@pytest.fixture
def feed() -> Iterator[tuple[Feed, str]]:
    state = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server calls it by this name
            state.asked.append({k: v for k, v in self.headers.items() if k.lower().startswith("if-")})
            if state.status != 200:
                code, body = state.status, b"broken"
            elif self.headers.get("If-None-Match") == state.etag:
                code, body = 304, b""
            else:
                code, body = 200, state.body
            state.served.append(code)
            self.send_response(code)
            self.send_header("ETag", state.etag)
            self.send_header("Last-Modified", "Wed, 02 Dec 2026 08:00:00 GMT")
            if state.length or code != 200:
                self.send_header("Content-Length", str(len(body) if code != 304 else 0))
            self.end_headers()
            if code != 304:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/tracker/data/json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Store, Catalog, PipelineStore]]:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    with Catalog.open(store.database_url) as catalog:
        runs = PipelineStore(catalog)
        (tmp_path / "web.yaml").write_text(RECIPE)
        (tmp_path / "marker.yaml").write_text(COMPONENT)
        (tmp_path / "web.pipeline.yaml").write_text(PIPELINE)
        runs.apply(load_pipelines(tmp_path / "web.pipeline.yaml", PipelineRecipes(catalog)), FakeClock()())
        build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="/r/web.yaml",
                                    log_path="/dev/null")  # fmt: skip
        catalog.finish_build(build, new_image("web", packages=[PASSWD]))
        yield store, catalog, runs


def archive(ref: str) -> ImageUpdates:
    """The archive carries base-passwd 3.6.1+kiln3 (the fix of the changed feed's record)."""
    update = Update("base-passwd", "amd64", PASSWD.version, "3.6.1+kiln3", "bookworm", True, "base-passwd",
                    PASSWD.version, "3.6.1+kiln3")  # fmt: skip
    return ImageUpdates(ref, "bookworm", [STATE], UpdatesReport(1, [update], [STATE]))


def daemon(
    home: tuple[Store, Catalog, PipelineStore], source: str, clock: FakeClock, **limits: Any
) -> Daemon:
    store, catalog, runs = home
    recipes = PipelineRecipes(catalog)
    scheduler = Scheduler(runs, CatalogChanges(catalog), recipes, cve=CveTrigger(store, catalog, archive))
    worker = Daemon(runs, CatalogRunner(catalog), scheduler, recipes, store.home, clock)
    worker.feed = VulnFeed(store, catalog, source, EVERY, **limits)
    return worker


def look(worker: Daemon, clock: FakeClock) -> None:
    """Let the feed's next check fall due, run it (in the daemon's background) and record it."""
    clock.advance(hours=6)
    worker.tick()
    assert worker.feeds.wait(30)
    worker.tick()


def sources(store: Store) -> list[SourceInfo]:
    return VulnDb.open(store).sources()


def test_a_url_feed_is_imported_when_it_changed_and_a_new_fix_queues_a_run(
    home: tuple[Store, Catalog, PipelineStore], feed: tuple[Feed, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, _, runs = home
    served, url = feed
    caplog.set_level(logging.INFO, "kiln.daemon")
    clock = FakeClock()
    worker = daemon(home, url, clock)
    worker.tick()  # the first tick looks at once
    assert worker.feeds.wait(30)
    worker.tick()
    [first] = sources(store)
    assert served.served == [200] and (first.location, first.records) == (url, 1)
    assert f"vulnerability feed {url}: imported debian-tracker: 1 records" in caplog.text
    assert runs.runs("web") == []  # the image already has the fix of CVE-1999-92001
    worker.tick()
    clock.advance(hours=5)
    worker.tick()
    assert served.served == [200]  # not due again before the interval
    look(worker, clock)
    assert served.served == [200, 304] and sources(store) == [first]
    assert f"vulnerability feed {url}: not modified (HTTP 304)" in caplog.text
    assert served.asked == [
        {},
        {"If-None-Match": served.etag, "If-Modified-Since": "Wed, 02 Dec 2026 08:00:00 GMT"},
    ]
    # a restarted daemon neither looks before the interval is up nor imports the unchanged feed
    restarted = daemon(home, url, clock)
    restarted.tick()
    assert served.served == [200, 304]
    look(restarted, clock)
    assert served.served == [200, 304, 304] and sources(store) == [first]
    # the feed changes: imported, and the cve trigger queues a run at once (with the fix named)
    served.body = changed_feed()
    look(restarted, clock)
    [second] = sources(store)
    assert served.served[-1] == 200 and second.records == 2 and second.digest != first.digest
    [run] = runs.runs("web")
    assert run.trigger.type == "cve" and run.trigger.cause.startswith(
        "CVE-1999-92002 (high): base-passwd 3.6.1+kiln2 -> 3.6.1+kiln3 in web@1.0.0/1"
    )
    assert f"after the import: queued run {run.id} of web: cve: CVE-1999-92002" in caplog.text
    assert restarted.failed == 0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 500}, "{url}: HTTP 500 Internal Server Error"),
        ({"body": b"{" + b" " * 5000 + b"}"}, "{url}: the feed is 5002 bytes, more than the 4096 allowed"),
        ({"body": b"{" + b" " * 5000 + b"}", "length": False}, "{url}: the feed is more than the 4096 bytes allowed"),
        ({"body": changed_feed()[:200]}, "not valid JSON"),
    ],
    ids=["http-500", "oversize", "oversize-unannounced", "truncated"],
)  # fmt: skip
def test_a_failing_feed_leaves_the_database_and_is_tried_again(
    home: tuple[Store, Catalog, PipelineStore],
    feed: tuple[Feed, str],
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any],
    error: str,
) -> None:
    store, _, runs = home
    served, url = feed
    clock = FakeClock()
    worker = daemon(home, url, clock, max_bytes=4096)
    look(worker, clock)
    [before] = sources(store)
    for name, value in answer.items():
        setattr(served, name, value)
    look(worker, clock)
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.getMessage().startswith(f"vulnerability feed {url}: ")
    assert error.format(url=url) in logged.getMessage()
    assert logged.getMessage().endswith(
        f"the database is unchanged, next try at {clock() + EVERY:%Y-%m-%d %H:%M:%S}"
    )
    assert sources(store) == [before] and worker.failed == 1
    # the next interval, the server is well again: the changed feed is imported
    served.status, served.length, served.body = 200, True, changed_feed()
    look(worker, clock)
    assert sources(store)[0].records == 2 and [r.trigger.type for r in runs.runs("web")] == ["cve"]


def test_a_file_feed_is_imported_when_it_changed_also_by_once(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, _, runs = home
    caplog.set_level(logging.INFO, "kiln.daemon")
    path = tmp_path / "tracker.json"
    path.write_bytes(FIXTURE.read_bytes())
    clock = FakeClock()
    assert daemon(home, str(path), clock).once(threading.Event()) == 0  # --once imports too
    [first] = sources(store)
    assert first.location == str(path) and first.records == 1
    worker = daemon(home, str(path), clock)
    look(worker, clock)
    assert "unchanged (same size and modification time)" in caplog.text and sources(store) == [first]
    path.write_bytes(changed_feed())
    look(worker, clock)
    assert sources(store)[0].records == 2
    [run] = runs.runs("web")
    assert run.trigger.type == "cve" and "CVE-1999-92002" in run.trigger.cause


def test_the_cli_imports_with_once_and_exits_1_when_the_feed_fails(tmp_path: Path) -> None:
    from tests.e2e.conftest import kiln

    home, feed = tmp_path / "home", tmp_path / "tracker.json"
    feed.write_bytes(FIXTURE.read_bytes())
    args = ("daemon", "--once", "--no-webhooks", "--vulndb-source", str(feed), "--vulndb-every", "1d")
    done = kiln(*args, home=home)
    assert f"vulnerability feed {feed}: imported debian-tracker: 1 records" in done.stderr
    [status] = json.loads(kiln("vulndb", "status", "--json", home=home).stdout)
    assert (status["location"], status["records"]) == (str(feed), 1)
    assert json.loads((home / "vulndb-feed.json").read_text())["source"] == str(feed)
    (home / "vulndb-feed.json").unlink()  # due again at once
    feed.write_text(FIXTURE.read_text()[:150])  # cut short: the tracker's format, broken JSON
    failed = kiln(*args, home=home, check=False)
    assert failed.returncode == 1, failed.stderr
    assert f"vulnerability feed {feed}: {feed}: not valid JSON" in failed.stderr
    assert "the database is unchanged, next try at" in failed.stderr
    assert json.loads(kiln("vulndb", "status", "--json", home=home).stdout) == [status]
