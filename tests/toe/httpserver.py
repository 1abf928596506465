"""A small HTTP server on 127.0.0.1 for download tests: files, redirects, flaky and failing paths."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from tests.loopback import http_server


def _tool_tarball() -> bytes:
    """A release tarball with one executable, ``bin/tool``."""
    script = b'#!/bin/sh\necho "tool 1.0"\n'
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


FILES = {
    "/files/tool.tar.gz": _tool_tarball(),
    "/files/hello.txt": b"hello from the local server\n",
    "/files/app.tar": b"\x00binary\xff" * 100,
    "/files/sub%20dir/name%20with%20space.txt": b"spaced\n",
}


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        count = self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path in FILES:
            self._send(200, FILES[self.path])
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/files/hello.txt")
            self.end_headers()
        elif self.path == "/flaky" and count < 3:
            self._send(503, b"try later")
        elif self.path == "/flaky":
            self._send(200, b"finally\n")
        elif self.path == "/broken":
            self._send(500, b"broken")
        else:
            self._send(404, b"not found")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve() -> Iterator[tuple[str, dict[str, int]]]:
    """Yields (base URL, hit counts per path); the server stops when the block ends."""
    hits: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"hits": hits})
    with http_server(handler) as port:
        yield f"http://127.0.0.1:{port}", hits
