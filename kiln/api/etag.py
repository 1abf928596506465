"""Entity tags for cached JSON answers: a client that sends back the ``ETag`` it got (``If-None-Match``)
gets ``304 Not Modified`` and no body while the answer is unchanged."""

from __future__ import annotations

import hashlib

from fastapi import Request
from fastapi.responses import Response


def tagged(body: bytes) -> tuple[bytes, str]:
    """``body`` with its strong entity tag (a digest of the bytes: equal answers, equal tags)."""
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def matches(header: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: ``*`` or any listed tag, compared weakly (a ``W/`` prefix is ignored)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def json_answer(request: Request, body: bytes, etag: str) -> Response:
    headers = {"ETag": etag}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
