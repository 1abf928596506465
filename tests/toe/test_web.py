"""WebDownload against a local HTTP server: files, folders, redirects, checksums, retries, failures."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.toe.actions import ActionFailed
from kiln.toe.actions import web as web_module
from tests.toe.conftest import call
from tests.toe.httpserver import FILES, serve


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, int]]]:
    monkeypatch.setattr(web_module, "BACKOFF", 0.01)
    with serve() as running:
        yield running


def test_downloads_files_and_folders(tiny_root: Path, server: tuple[str, dict[str, int]]) -> None:
    base, _ = server
    sha = hashlib.sha256(FILES["/files/app.tar"]).hexdigest()
    out = call(tiny_root, "WebDownload", [
        {"source": f"{base}/files/hello.txt", "destination": "/opt/dl/renamed.txt"},
        {"source": f"{base}/files/app.tar", "destination": "/opt/dl/new/", "checksum": sha, "algorithm": "sha256"},
        {"source": f"{base}/redirect", "destination": "/opt/dl/redirected.txt"},
        {"source": f"{base}/files/sub%20dir/name%20with%20space.txt", "destination": "/opt/dl/"},
    ])  # fmt: skip
    dl = tiny_root / "opt/dl"
    assert (dl / "renamed.txt").read_bytes() == FILES["/files/hello.txt"]
    assert (dl / "new/app.tar").read_bytes() == FILES["/files/app.tar"]
    assert (dl / "redirected.txt").read_bytes() == FILES["/files/hello.txt"]
    assert (dl / "name with space.txt").read_bytes() == b"spaced\n"
    assert out["destination"].splitlines() == [
        "/opt/dl/renamed.txt", "/opt/dl/new/app.tar", "/opt/dl/redirected.txt", "/opt/dl/name with space.txt",
    ]  # fmt: skip
    assert sorted(p.name for p in dl.iterdir()) == [
        "name with space.txt",
        "new",
        "redirected.txt",
        "renamed.txt",
    ]


def test_checksum_mismatch_leaves_nothing(tiny_root: Path, server: tuple[str, dict[str, int]]) -> None:
    base, _ = server
    with pytest.raises(ActionFailed, match="MD5 checksum mismatch"):
        call(tiny_root, "WebDownload", [
            {"source": f"{base}/files/hello.txt", "destination": "/dl/x.txt", "checksum": "0" * 32, "algorithm": "MD5"}
        ])  # fmt: skip
    assert list((tiny_root / "dl").iterdir()) == []


def test_overwrite_rules_and_checksum_skip(tiny_root: Path, server: tuple[str, dict[str, int]]) -> None:
    base, hits = server
    url = f"{base}/files/hello.txt"
    md5 = hashlib.md5(FILES["/files/hello.txt"]).hexdigest()
    call(tiny_root, "WebDownload", [{"source": url, "destination": "/dl/h.txt"}])
    with pytest.raises(ActionFailed, match="already exists and overwrite is false"):
        call(tiny_root, "WebDownload", [{"source": url, "destination": "/dl/h.txt", "overwrite": False}])
    lines: list[str] = []
    call(tiny_root, "WebDownload", [{"source": url, "destination": "/dl/h.txt", "checksum": md5, "algorithm": "md5"}],
         lines)  # fmt: skip
    assert hits["/files/hello.txt"] == 1 and "not downloaded again" in lines[0]


def test_retries_transient_errors_then_fails_on_persistent_ones(
    tiny_root: Path, server: tuple[str, dict[str, int]]
) -> None:
    base, hits = server
    call(tiny_root, "WebDownload", [{"source": f"{base}/flaky", "destination": "/dl/flaky"}])
    assert (tiny_root / "dl/flaky").read_text() == "finally\n" and hits["/flaky"] == 3
    with pytest.raises(ActionFailed, match="failed after 5 attempts: HTTP 500"):
        call(tiny_root, "WebDownload", [{"source": f"{base}/broken", "destination": "/dl/broken"}])
    assert hits["/broken"] == 5
    with pytest.raises(ActionFailed, match="HTTP 404"):
        call(tiny_root, "WebDownload", [{"source": f"{base}/nothing", "destination": "/dl/n"}])
    assert hits["/nothing"] == 1  # a 404 is not retried
    with pytest.raises(ActionFailed, match="ConnectError"):
        call(tiny_root, "WebDownload", [{"source": "http://127.0.0.1:9/x", "destination": "/dl/x"}])
    assert sorted(p.name for p in (tiny_root / "dl").iterdir()) == ["flaky"]
