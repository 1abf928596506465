"""Event fixtures: the catalog fixtures (SQLite and PostgreSQL) and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from kiln.events.signing import new_secret
from tests.catalog.conftest import catalog, catalog_url, record_image
from tests.loopback import http_server

__all__ = ["catalog", "catalog_url", "record_image"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next status of ``statuses`` (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    location: str | None = None  # sent with 3xx answers

    def answer(self) -> int:
        index = min(len(self.requests) - 1, len(self.statuses) - 1)
        return self.statuses[index]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.answer()
            self.send_response(status)
            if state.location and 300 <= status < 400:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler) as port:
        state.url = f"http://127.0.0.1:{port}/hook"
        yield state


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh signing secret in KILN_TEST_HOOK_SECRET (the variable the test webhooks reference)."""
    value = new_secret()
    monkeypatch.setenv("KILN_TEST_HOOK_SECRET", value)
    return value
