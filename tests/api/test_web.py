"""The web UI without JavaScript (plain HTTP forms and links): login with CSRF, catalog search by
package, the image page's evidence, the build log; the vendored htmx matches its pinned sha256."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog
from kiln.store import Store
from kiln.web.assets import HTMX_FILE, HTMX_SHA256, STATIC, file_sha256
from tests.api.conftest import make_client
from tests.api.seed import CVE, FIXED, Seeded, seed


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("web-home"))


@pytest.fixture(scope="module")
def reader(home: Seeded) -> str:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        token, _ = create_token(
            catalog, server_secret(store.home), "alice", ["images:read", "builds:read"], None
        )
    return token


@pytest.fixture
def browser(home: Seeded) -> Iterator[TestClient]:
    with make_client(home.home) as client:
        yield client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match[1]


def login(client: TestClient, token: str, next_page: str = "/") -> None:
    form = client.get("/login")
    response = client.post("/login", data={"token": token, "csrf": _csrf(form.text), "next": next_page},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303, response.text
    cookie = response.headers.get_list("set-cookie")
    assert any("kiln_session=" in c and "HttpOnly" in c and "SameSite=strict" in c for c in cookie), cookie


def test_pages_need_a_session(browser: TestClient) -> None:
    response = browser.get("/images/web/1.0.0/1", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/images/web/1.0.0/1"


def test_login_checks_csrf_and_the_token(browser: TestClient, reader: str) -> None:
    form = browser.get("/login")
    forged = browser.post("/login", data={"token": reader, "csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403 and "CSRF" in forged.text
    wrong = browser.post("/login", data={"token": "kiln_000000000000_" + "A" * 43, "csrf": _csrf(form.text)})
    assert wrong.status_code == 401 and "unknown API token" in wrong.text
    offsite = browser.post("/login", data={"token": reader, "csrf": _csrf(form.text), "next": "//evil.example/"},
                           follow_redirects=False)  # fmt: skip
    assert offsite.headers["location"] == "/"


def test_journey_without_javascript(browser: TestClient, reader: str, home: Seeded) -> None:
    login(browser, reader)
    found = browser.get("/", params={"package": "libssl3"})
    assert "web@1.0.0/1" in found.text and "libssl3 3.0.11-1~deb12u2" in found.text
    older = browser.get("/", params={"package": "openssl", "below": "3.0.0"})
    assert "No image matches." in older.text
    bad = browser.get("/", params={"package": "openssl", "below": "!"})
    assert "invalid Debian version" in bad.text
    page = browser.get("/images/web/1.0.0/1")
    assert page.status_code == 200
    for expected in (CVE, FIXED, "87.5%", "Prevent empty passwords", "app@2.0.0/1", "debian:bookworm",
                     "/api/v1/images/web/1.0.0/1/artifacts/1", "the server has no verification key"):  # fmt: skip
        assert expected in page.text, expected
    app = browser.get("/images/app/2.0.0/1").text
    assert '<svg role="img"' in app and '<a href="/images/web/1.0.0/1">' in app  # lineage graph links
    compare = browser.get("/images/app/2.0.0/1/diff", params={"against": "web@1.0.0/1"})
    assert "app@2.0.0/1 compared with web@1.0.0/1" in compare.text
    filtered = browser.get("/images/web/1.0.0/1", params={"pq": "bash"}).text
    assert "5.2.15-2+b7" in filtered and "libssl3</td>" not in filtered
    download = browser.get("/api/v1/images/web/1.0.0/1/artifacts/1", headers={"Range": "bytes=0-3"})
    assert download.status_code == 206 and download.content == bytes(range(4))  # the cookie reads
    log = browser.get(f"/builds/{home.build_id}")
    assert "Setting up openssl" in log.text and "succeeded" in log.text and "hx-trigger" not in log.text
    assert browser.get("/builds/ffffffff").status_code == 404
    out = browser.post("/logout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert browser.get("/", follow_redirects=False).status_code == 303


def test_public_read_needs_no_login(home: Seeded) -> None:
    with make_client(home.home, public_read=True) as client:
        assert "web@1.0.0/1" in client.get("/").text


def test_vendored_htmx_is_the_pinned_file(browser: TestClient) -> None:
    assert file_sha256(STATIC / HTMX_FILE) == HTMX_SHA256
    page = browser.get("/login").text
    assert f'src="/static/{HTMX_FILE}" integrity="sha256-' in page
    assert browser.get(f"/static/{HTMX_FILE}").status_code == 200


def test_image_page_shows_labels_state_history_and_pipelines(
    browser: TestClient, reader: str, home: Seeded
) -> None:
    from kiln.lifecycle.states import change_state

    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        change_state(catalog, home.app, "deprecated", actor="release-bot", reason="superseded by 2.1")
    login(browser, reader)
    app = browser.get("/images/app/2.0.0/1").text
    assert "deprecated" in app and "release-bot" in app and "superseded by 2.1" in app
    assert "Lifecycle history" in app
    web = browser.get("/images/web/1.0.0/1").text
    assert 'href="/?label=team%3Dpayments"' in web and "team=payments" in web
    assert re.search(r"<dt>Channels</dt><dd>dev</dd>", web)
    labelled = browser.get("/", params={"label": "team=payments"}).text
    assert 'href="/images/web/1.0.0/1"' in labelled and 'href="/images/app/2.0.0/1"' not in labelled
    assert "invalid label" in browser.get("/", params={"label": "nolabel"}).text
    listed = browser.get("/pipelines").text
    assert 'href="/pipelines/web-nightly"' in listed and "Europe/Berlin" in listed
    one = browser.get("/pipelines/web-nightly").text
    assert "skipped: no parent, component or CVE changed since the last build" in one
    assert browser.get("/pipelines/nope").status_code == 404


def test_promote_form_checks_csrf_scope_and_policy(
    home: Seeded, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from kiln.api import ApiConfig, create_app
    from kiln.evidence.signing import generate_key
    from kiln.settings import Settings

    key = tmp_path_factory.mktemp("web-key") / "kiln.key"
    generate_key(key)
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        promoter, _ = create_token(catalog, server_secret(store.home), "promoter",
                                   ["images:read", "channels:promote:staging"], None)  # fmt: skip
    config = ApiConfig(data_dir=home.home, settings=Settings(signing_key=key))
    with TestClient(create_app(config), base_url="http://127.0.0.1") as client:
        login(client, promoter)
        page = client.get("/images/web/1.0.0/1").text
        assert "<option>staging</option>" in page and "<option>prod</option>" not in page
        csrf = _csrf(page)
        url = "/images/web/1.0.0/1/promote"
        assert client.post(url, data={"channel": "staging", "csrf": "forged"}).status_code == 403
        assert client.post(url, data={"channel": "prod", "csrf": csrf}).status_code == 403
        done = client.post(url, data={"channel": "staging", "csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/images/web/1.0.0/1"
        assert re.search(r"<dt>Channels</dt><dd>dev, staging</dd>", client.get("/images/web/1.0.0/1").text)
        client.cookies.delete("kiln_session")
        anonymous = client.post(url, data={"channel": "staging", "csrf": csrf}, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
