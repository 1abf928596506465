"""The server's two caches are never staler than they claim: the token cache (a revocation refuses the
next read on SQLite, within TTL elsewhere, at once for a write) and the read cache (one making per
key for concurrent misses; a commit by any connection invalidates)."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.access.secret import server_secret
from kiln.access.tokens import TokenRefused, create_token, digest, revoke_token, verify
from kiln.api.cache import ReadCache
from kiln.api.tokencache import TTL, TokenCache
from kiln.catalog import Catalog
from kiln.store import Store
from tests.api.conftest import make_client
from tests.api.seed import Seeded, record_image, seed


@pytest.fixture
def home(tmp_path: Path) -> Seeded:
    return seed(tmp_path / "home")


def _token(home: Path, name: str, expires: timedelta | None = None) -> str:
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog:
        return create_token(catalog, server_secret(store.home), name, ["admin"], expires)[0]


def _revoke(home: Path, name: str) -> None:
    """Revoke from another catalog connection (as ``kiln tokens revoke`` in another process does)."""
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog:
        revoke_token(catalog, name)


def test_revocation_refuses_the_next_read_on_sqlite(home: Seeded) -> None:
    token = _token(home.home, "reader")
    bearer = {"Authorization": f"Bearer {token}"}
    with make_client(home.home) as client:
        assert client.get("/api/v1/images", headers=bearer).status_code == 200
        assert client.get("/api/v1/images", headers=bearer).status_code == 200
        client.cookies.set("kiln_session", token)  # the web UI's session: the same token
        assert client.get(f"/images/{home.web.replace('@', '/')}").status_code == 200
        assert client.app.state.tokens._values  # type: ignore[attr-defined]  # the verification is remembered
        _revoke(home.home, "reader")
        refused = client.get("/api/v1/images", headers=bearer)
        assert refused.status_code == 401 and refused.json()["detail"] == "API token 'reader' was revoked"
        page = client.get(f"/images/{home.web.replace('@', '/')}", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_without_a_change_counter_revocation_holds_within_ttl(home: Seeded) -> None:
    """PostgreSQL has no data_version: a verification is trusted for TTL seconds, no longer."""
    token = _token(home.home, "pg-like")
    store = Store.open_at(home.home, home.home / "cache")
    now = [1000.0]
    cache = TokenCache(lambda: None, clock=lambda: now[0])
    with Catalog.open(store.database_url) as catalog:
        secret = server_secret(store.home)
        key = digest(secret, token)

        def check() -> str:
            return cache.principal(key, lambda: verify(catalog, secret, token)).name

        assert check() == "pg-like"
        revoke_token(catalog, "pg-like")
        now[0] += TTL - 0.01
        assert check() == "pg-like"  # the stated bound: trusted up to TTL after the verification
        now[0] += 0.02
        with pytest.raises(TokenRefused, match="revoked"):
            check()
        with pytest.raises(TokenRefused, match="revoked"):  # a refusal is not remembered either way
            check()


def test_an_entry_never_outlives_the_token(home: Seeded) -> None:
    token = _token(home.home, "short", timedelta(hours=1))
    store = Store.open_at(home.home, home.home / "cache")
    cache = TokenCache(lambda: None, ttl=3600)
    with Catalog.open(store.database_url) as catalog:
        secret = server_secret(store.home)
        key = digest(secret, token)
        later = datetime.now(UTC) + timedelta(hours=2)
        assert cache.principal(key, lambda: verify(catalog, secret, token)).name == "short"
        with pytest.raises(TokenRefused, match="expired"):
            cache.principal(key, lambda: verify(catalog, secret, token, later), now=later)


def test_a_write_always_verifies(home: Seeded) -> None:
    """Even with a cache that would trust the token for an hour, a revoked token cannot write."""
    token = _token(home.home, "writer")
    bearer = {"Authorization": f"Bearer {token}"}
    with make_client(home.home) as client:
        client.app.state.tokens = TokenCache(lambda: None, ttl=3600)  # type: ignore[attr-defined]
        assert client.get("/api/v1/images", headers=bearer).status_code == 200
        _revoke(home.home, "writer")
        assert client.get("/api/v1/images", headers=bearer).status_code == 200  # the cache's bound
        name, version, build = home.web.replace("@", "/").split("/")
        write = client.put(f"/api/v1/images/{name}/{version}/{build}/labels/team", json={"value": "a"},
                           headers=bearer)  # fmt: skip
        assert write.status_code == 401 and "revoked" in write.json()["detail"]


def test_concurrent_misses_make_the_value_once(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE t (x)")
    cache = ReadCache(f"sqlite:///{db}")
    made: list[int] = []

    def slow() -> int:
        time.sleep(0.2)
        made.append(1)
        return len(made)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", slow))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1] and results == [1] * 10
    with sqlite3.connect(db) as raw:  # a commit elsewhere: the next get makes it again
        raw.execute("INSERT INTO t VALUES (1)")
    assert cache.get("k", slow) == 2

    def failing() -> int:
        time.sleep(0.1)
        raise RuntimeError("boom")

    errors: list[str] = []

    def call() -> None:
        try:
            cache.get("bad", failing)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["boom"] * 3  # each waiter made its own (and failed the same way); nothing cached
    assert cache.get("bad", lambda: 7) == 7
    cache.close()


def test_etag_answers_304_until_a_commit_changes_the_answer(home: Seeded) -> None:
    with make_client(home.home, public_read=True) as client:
        first = client.get("/api/v1/images", params={"package": "openssl"})
        etag = first.headers["etag"]
        again = client.get("/api/v1/images", params={"package": "openssl"}, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        listed = client.get("/api/v1/images", headers={"If-None-Match": f'"other", W/{etag}'})
        assert listed.status_code == 200  # another query: another answer, another tag
        store = Store.open_at(home.home, home.home / "cache")
        with Catalog.open(store.database_url) as catalog:
            record_image(catalog, store, "newer", "1.0.0", "debian:bookworm")
        changed = client.get("/api/v1/images", params={"package": "openssl"}, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert "newer@1.0.0/1" in [i["ref"] for i in changed.json()["items"]]
