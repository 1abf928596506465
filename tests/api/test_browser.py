"""The web UI in a real browser: Playwright driving Debian's chromium (no browser download) against a
real ``kiln serve``. Log in with a token, find an image by package name, open it, see a CVE with its
fix and its labels, promote it to a channel, deprecate it through the lifecycle form and see its state
and history change, open the lineage graph and follow a node, see a pipeline's
skipped run, then follow a running build's log until it succeeds. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog, NewImage
from kiln.evidence.signing import generate_key
from kiln.store import Store
from tests.api.seed import CVE, FIXED, seed
from tests.api.server import kiln_serve

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian package chromium missing (make deps)")


def _run_build(catalog: Catalog, log: Path, build_id: str, started: threading.Event) -> None:
    """Play a build: log records arriving over a few seconds, then the image recorded."""
    started.wait(30)
    with open(log, "a") as fh:
        for n in range(1, 4):
            time.sleep(1.0)
            record = {
                "kind": "output",
                "scope": "step",
                "message": f"step {n} of 3 done",
                "time": time.time(),
            }
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        fh.write(json.dumps({"kind": "end", "scope": "build", "message": "build live 1.0.0",
                             "status": "success", "duration": 3.0, "time": time.time()}) + "\n")  # fmt: skip
    catalog.finish_build(build_id, NewImage(name="live", version="1.0.0", digest="sha256:" + "9" * 64,
                                            created=datetime.now(UTC), parent="debian:bookworm"))  # fmt: skip


def test_journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded = seed(tmp_path / "home")
    generate_key(tmp_path / "signing.key")
    monkeypatch.setenv("KILN_SIGNING_KEY", str(tmp_path / "signing.key"))  # the server signs promotions
    shots = tmp_path / "screenshots"
    shots.mkdir()
    store = Store.open_at(seeded.home, seeded.home / "cache")
    catalog = Catalog.open(store.database_url)
    try:
        token, _ = create_token(
            catalog, server_secret(store.home), "alice",
            ["images:read", "images:write", "builds:read", "channels:promote:staging"], None,
        )  # fmt: skip
        log = store.home / "logs" / "live.jsonl"
        build_id = catalog.start_build(recipe_name="live", recipe_version="1.0.0", recipe_path="/r/live.yaml",
                                       log_path=str(log))  # this test process is the build's process  # fmt: skip
        log.write_text(json.dumps({"kind": "start", "scope": "build", "message": "build live 1.0.0",
                                   "build": build_id, "time": time.time()}) + "\n")  # fmt: skip
        started = threading.Event()
        player = threading.Thread(target=_run_build, args=(catalog, log, build_id, started), daemon=True)
        player.start()
        with kiln_serve(seeded.home) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url + "/")
                expect(page).to_have_url(url + "/login?next=/")
                page.get_by_label("API token").fill(token)
                page.get_by_role("button", name="Log in").click()
                expect(page.get_by_role("heading", name="Image catalog")).to_be_visible()
                page.get_by_label("Has package").fill("openssl")
                page.get_by_role("button", name="Search").click()
                page.screenshot(path=str(shots / "catalog.png"), full_page=True)
                page.get_by_role("link", name="web@1.0.0/1").click()
                expect(page.get_by_role("heading", name="web@1.0.0/1")).to_be_visible()
                row = page.get_by_role("row").filter(has_text=CVE)
                expect(row).to_contain_text(FIXED)
                expect(row).to_contain_text("high")
                expect(page.get_by_role("link", name="team=payments")).to_be_visible()
                page.screenshot(path=str(shots / "image.png"), full_page=True)
                page.get_by_label("Channel").select_option("staging")
                page.get_by_role("button", name="Promote").click()
                expect(page.locator("dt:has-text('Channels') + dd")).to_have_text("dev, staging")
                expect(page.locator("#image-state")).to_have_text("active")
                page.get_by_label("New state").select_option("deprecated")
                page.get_by_label("Reason").fill("superseded by web 1.0.1")
                page.get_by_role("button", name="Change state").click()
                expect(page.locator("#image-state")).to_have_text("deprecated")
                expect(page.locator("dt:has-text('State') + dd")).to_contain_text("superseded by web 1.0.1")
                change = page.get_by_role("row").filter(has_text="superseded by web 1.0.1")
                expect(change).to_contain_text("alice (web)")
                page.screenshot(path=str(shots / "lifecycle.png"), full_page=True)
                page.get_by_role("link", name="app@2.0.0/1").first.click()  # built on it
                expect(page.get_by_role("heading", name="app@2.0.0/1")).to_be_visible()
                page.screenshot(path=str(shots / "lineage.png"), full_page=True)
                page.locator("svg a[href='/images/web/1.0.0/1']").click()  # a node of the lineage graph
                expect(page.get_by_role("heading", name="web@1.0.0/1")).to_be_visible()

                page.get_by_role("link", name="Pipelines").click()
                page.get_by_role("link", name="web-nightly").click()
                expect(page.get_by_text("skipped: no parent, component or CVE changed")).to_be_visible()
                page.screenshot(path=str(shots / "pipelines.png"), full_page=True)
                page.get_by_role("link", name="Builds").click()
                page.get_by_role("link", name=build_id[:12]).click()
                expect(page.locator("#build-status")).to_have_text("running")
                started.set()
                expect(page.get_by_text("step 3 of 3 done")).to_be_visible(timeout=20_000)
                expect(page.locator("#build-status")).to_have_text("succeeded", timeout=20_000)
                expect(page.get_by_role("link", name="live@1.0.0/1")).to_be_visible()
                page.screenshot(path=str(shots / "build.png"), full_page=True)
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.context.add_cookies(page.context.cookies())
                phone.goto(url + "/images/web/1.0.0/1")
                phone.screenshot(path=str(shots / "image-phone.png"), full_page=True)
            finally:
                browser.close()
        player.join(10)
    finally:
        catalog.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "build.png",
        "catalog.png",
        "image-phone.png",
        "image.png",
        "lifecycle.png",
        "lineage.png",
        "pipelines.png",
    ]
