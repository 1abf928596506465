"""The web UI's session: the token in an HTTP-only, SameSite=Strict cookie; a double-submit CSRF
token on every form."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from kiln.access.tokens import ANONYMOUS, Principal, TokenRefused, authenticate
from kiln.api.auth import SESSION_COOKIE, principal_of
from kiln.api.problems import ApiError

CSRF_COOKIE = "kiln_csrf"


class LoginNeeded(Exception):
    """The page needs a session (raised to redirect to /login)."""


def who(request: Request, scope: str) -> Principal:
    """The session's principal if it has ``scope``; anonymous on --public-read servers; else
    LoginNeeded (no or an invalid session) or a 403 problem."""
    try:
        principal = principal_of(request)
    except ApiError:
        principal = None  # expired or revoked: log in again
    if principal is None:
        if request.app.state.config.public_read:
            return ANONYMOUS
        raise LoginNeeded
    if not principal.allows(scope):
        raise ApiError(403, f"token {principal.name!r} lacks the scope {scope!r}")
    return principal


def form_session(request: Request) -> Principal:
    """The session's principal on a form post (the API never takes a cookie for a write; a page's form
    does, with its CSRF token checked first)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginNeeded
    try:
        principal = authenticate(request.app.state.catalog, request.app.state.secret, token)
    except TokenRefused:
        raise LoginNeeded from None
    request.state.actor = f"{principal.name} ({principal.token_id})"
    return principal


def form_principal(request: Request, csrf: str, *, name: str, ref: str, scope: str, action: str) -> Principal:
    """A form post's principal on image ``ref`` (named ``name``), checked in order: CSRF token, session,
    the image visible to its token (else 404, as if absent), ``scope`` granted (else 403); the audit
    records ``ref -> action``."""
    check_csrf(request, csrf)
    principal = form_session(request)
    request.state.audit_target = f"{ref} -> {action}"
    if not principal.sees(name):
        raise ApiError(404, f"no image {ref}")
    if not principal.allows(scope):
        raise ApiError(403, f"token {principal.name!r} lacks the scope '{scope}'")
    return principal


def csrf_token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def check_csrf(request: Request, submitted: str) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, submitted):
        raise ApiError(403, "the form's CSRF token does not match; reload the page and try again")


def set_cookies(response: Response, *, csrf: str, token: str | None, secure: bool) -> None:
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure, path="/")
    if token is not None:
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/",
                            max_age=12 * 3600)  # fmt: skip


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
