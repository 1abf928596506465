"""The image page's lifecycle form without JavaScript (plain HTTP posts with the CSRF token): shown only
to a session with ``images:write``, a post without or with a wrong CSRF token or without the scope is
refused with nothing changed, deprecating and reactivating show on the page's state and history, and
retiring asks for a confirmation (and deletes nothing) before it deletes the artifacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.access import audit
from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog
from kiln.store import Store
from tests.api.conftest import make_client
from tests.api.seed import Seeded, seed
from tests.api.test_web import _csrf, login

URL = "/images/web/1.0.0/1"


@pytest.fixture
def home(tmp_path: Path) -> Seeded:
    return seed(tmp_path / "home")  # each test changes states: its own catalog


def make_token(home: Seeded, name: str, scopes: list[str], images: list[str] | None = None) -> str:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        return create_token(catalog, server_secret(store.home), name, scopes, None, images=images)[0]


@pytest.fixture
def client(home: Seeded) -> Iterator[TestClient]:
    with make_client(home.home) as c:
        yield c


def state_of(home: Seeded, ref: str = "web@1.0.0/1") -> str:
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        return catalog.get_image(ref).state


def test_the_form_needs_images_write(client: TestClient, home: Seeded) -> None:
    login(client, make_token(home, "reader", ["images:read"]))
    page = client.get(URL).text
    assert 'action="/images/web/1.0.0/1/state"' not in page and 'name="reason"' not in page
    refused = client.post(URL + "/state", data={"state": "deprecated", "reason": "x", "csrf": _csrf(page)})
    assert refused.status_code == 403 and "lacks the scope &#39;images:write&#39;" in refused.text
    assert "<!doctype html>" in refused.text  # the HTML error page, not problem+json
    assert state_of(home) == "active"


def test_csrf_missing_or_wrong_is_refused(client: TestClient, home: Seeded) -> None:
    login(client, make_token(home, "writer", ["images:read", "images:write"]))
    client.get(URL)
    for form in (
        {"state": "deprecated", "reason": "x"},
        {"state": "deprecated", "reason": "x", "csrf": "forged"},
    ):
        refused = client.post(URL + "/state", data=form)
        assert refused.status_code == 403 and "CSRF token does not match" in refused.text
    assert state_of(home) == "active"
    hidden = make_token(home, "app-writer", ["images:read", "images:write"], images=["app*"])
    client.cookies.set("kiln_session", hidden)
    page = client.get("/images/app/2.0.0/1").text
    other = client.post(URL + "/state", data={"state": "deprecated", "reason": "x", "csrf": _csrf(page)})
    assert other.status_code == 404 and state_of(home) == "active"  # an image the token cannot see


def test_deprecate_and_reactivate_without_javascript(client: TestClient, home: Seeded) -> None:
    login(client, make_token(home, "writer", ["images:read", "images:write"]))
    page = client.get(URL).text
    options = re.findall(r'<option value="([a-z]+)">', page)
    assert options == ["deprecated", "disabled", "retired"]  # the legal moves from active
    done = client.post(URL + "/state", data={"state": "deprecated", "reason": "superseded by 1.0.1",
                                             "csrf": _csrf(page)}, follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == URL + "#history"
    assert state_of(home) == "deprecated"
    page = client.get(URL).text
    assert '<strong id="image-state">deprecated</strong>' in page
    assert re.search(
        r"<td>active</td><td>deprecated</td><td>writer \(web\)</td><td>superseded by 1.0.1</td>", page
    )
    assert re.findall(r'<option value="([a-z]+)">', page) == ["active", "disabled", "retired"]
    client.post(URL + "/state", data={"state": "active", "reason": "fixed after all", "csrf": _csrf(page)})
    assert state_of(home) == "active"
    illegal = client.post(URL + "/state", data={"state": "active", "reason": "again", "csrf": _csrf(page)})
    assert illegal.status_code == 409 and "is already active" in illegal.text
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        last = audit.entries(catalog, limit=2)
    assert [(r.action, r.target, r.status) for r in last] == [
        ("POST /images/web/1.0.0/1/state", "web@1.0.0/1 -> active", 409),
        ("POST /images/web/1.0.0/1/state", "web@1.0.0/1 -> active", 303),
    ]
    assert last[1].actor.startswith("writer (")


def test_retiring_asks_first(client: TestClient, home: Seeded) -> None:
    login(client, make_token(home, "retirer", ["images:read", "images:write"]))
    page = client.get(URL).text
    store = Store.open_at(home.home, home.home / "cache")
    with Catalog.open(store.database_url) as catalog:
        artifacts = [Path(a.path) for a in catalog.get_image("web@1.0.0/1").artifacts]
    assert all(p.exists() for p in artifacts)
    asked = client.post(
        URL + "/state", data={"state": "retired", "reason": "end of life", "csrf": _csrf(page)}
    )
    assert asked.status_code == 200 and "Retire and delete the artifacts" in asked.text
    assert "rootfs" in asked.text and state_of(home) == "active" and all(p.exists() for p in artifacts)
    confirm = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', asked.text))
    assert confirm == {"csrf": _csrf(page), "state": "retired", "reason": "end of life", "confirm": "yes"}
    done = client.post(URL + "/state", data=confirm, follow_redirects=False)
    assert done.status_code == 303 and state_of(home) == "retired"
    assert not any(p.exists() for p in artifacts)
    page = client.get(URL).text
    assert '<strong id="image-state">' not in page  # nothing leaves retired: no form
    assert re.search(r"<td>active</td><td>retired</td><td>retirer \(web\)</td><td>end of life</td>", page)
