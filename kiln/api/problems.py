"""Errors as RFC 9457 problem+json, with the same messages (and hints) as the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from kiln.errors import KilnError, NotFound, ValidationFailed

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    hint: str | None = None
    errors: list[str] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {MEDIA_TYPE: {}}} for code in (400, 401, 403, 404, 409, 416, 422)
}

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 416: "Range Not Satisfiable",
    422: "Unprocessable Content", 429: "Too Many Requests", 503: "Service Unavailable",
}  # fmt: skip


class ApiError(KilnError):
    """A KilnError with an HTTP status (raised by routes and dependencies)."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def problem(status: int, detail: str, *, hint: str | None = None, errors: list[str] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail, hint=hint, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


CONFLICTS = ("IllegalTransition", "ImageNotUsable", "PromotionDenied", "PublishConflict")
"""Refusals caused by the catalog's state, not the request's form (409): by class name, so this module
imports none of the libraries that raise them."""


def status_of(exc: KilnError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if any(cls.__name__ in CONFLICTS for cls in type(exc).__mro__):
        return 409
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ValidationFailed) or getattr(exc, "issues", None):
        return 422
    return 400


def _for_people(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and hasattr(request.app.state, "error_page")


def _page(request: Request, status: int, detail: str, hint: str | None) -> Response:
    """The web UI's HTML error page (set by kiln.web.app) for everything outside /api/."""
    render: Callable[[Request, int, str, str, str | None], Response] = request.app.state.error_page
    return render(request, status, TITLES.get(status, "Error"), detail, hint)


def _kiln_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KilnError)
    if _for_people(request):
        return _page(request, status_of(exc), exc.message, exc.hint)
    issues = getattr(exc, "issues", None)
    errors = [str(i) for i in issues] if issues else None
    headers = {"WWW-Authenticate": "Bearer"} if status_of(exc) == 401 else None
    return problem(status_of(exc), exc.message, hint=exc.hint, errors=errors, headers=headers)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _for_people(request):
        return _page(request, exc.status_code, str(exc.detail), None)
    return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
    ]
    if _for_people(request):
        return _page(request, 422, "; ".join(errors), None)
    return problem(422, "invalid request: " + "; ".join(errors), errors=errors)


def install(app: FastAPI) -> None:
    app.add_exception_handler(KilnError, _kiln_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
