"""A cap on request bodies (a recipe and its documents are small; nothing else is uploaded)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from kiln.api.problems import problem

MAX_BODY = 8 << 20


class BodyLimit:
    """413 for a declared body over ``limit`` bytes; 411 for a body without a Content-Length
    (chunked uploads), so the cap is known before anything is read."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length")
            if declared is None and b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                await problem(411, "a request body needs a Content-Length")(scope, receive, send)
                return
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                await problem(413, f"request body over {self.limit >> 20} MiB")(scope, receive, send)
                return
        await self.app(scope, receive, send)
