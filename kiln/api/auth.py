"""Authentication (bearer tokens; the web UI's session cookie on safe methods), scope checks as
typed dependencies, and the audit middleware that records every mutating call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiln.access import audit
from kiln.access.tokens import ANONYMOUS, Principal, TokenRefused, authenticate, digest, verify
from kiln.api.problems import ApiError
from kiln.api.tokencache import TokenCache
from kiln.catalog import Catalog

SESSION_COOKIE = "kiln_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer <token>'")
        return value.strip()
    if request.method in SAFE_METHODS:  # a cookie never authorises a write (no CSRF through the API)
        return request.cookies.get(SESSION_COOKIE)
    return None


def principal_of(request: Request) -> Principal | None:
    """The caller, or None when no token was presented; 401 for an invalid one."""
    token = presented_token(request)
    if token is None:
        return None
    catalog, secret = request.app.state.catalog, request.app.state.secret
    try:
        if request.method in SAFE_METHODS:  # a read may trust a recent verification; a write never
            tokens: TokenCache = request.app.state.tokens
            principal = tokens.principal(digest(secret, token), lambda: verify(catalog, secret, token))
        else:
            principal = authenticate(catalog, secret, token)
    except TokenRefused as exc:
        raise ApiError(401, exc.message, hint=exc.hint) from None
    request.state.actor = f"{principal.name} ({principal.token_id})"
    return principal


def require(scope: str, *, public: bool = False) -> Callable[[Request], Principal]:
    """A dependency admitting callers whose token has ``scope`` (or anyone, for ``public`` reads when
    the server runs with --public-read)."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            if public and request.app.state.config.public_read:
                request.state.principal = ANONYMOUS
                return ANONYMOUS
            raise ApiError(401, "authentication required", hint="send 'Authorization: Bearer <token>' "
                           "(kiln tokens create NAME --scope ...)")  # fmt: skip
        if not principal.allows(scope):
            raise ApiError(403, f"token {principal.name!r} lacks the scope {scope!r}")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


ImagesReader = Annotated[Principal, Depends(require("images:read", public=True))]
BuildsReader = Annotated[Principal, Depends(require("builds:read", public=True))]
BuildsWriter = Annotated[Principal, Depends(require("builds:write"))]
ImagesWriter = Annotated[Principal, Depends(require("images:write"))]
PipelinesReader = Annotated[Principal, Depends(require("builds:read", public=True))]
PipelinesRunner = Annotated[Principal, Depends(require("pipelines:run"))]
PipelinesWriter = Annotated[Principal, Depends(require("pipelines:write"))]
RegistryWriter = Annotated[Principal, Depends(require("registry:write"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def require_channel(request: Request) -> Principal:
    """``channels:promote:<channel>`` for the channel the path names."""
    channel = str(request.path_params.get("channel", ""))
    return require(f"channels:promote:{channel}")(request)


ChannelPromoter = Annotated[Principal, Depends(require_channel)]


class AuditMiddleware:
    """Records every non-safe request (who, what, target, from where, status) after it completes."""

    def __init__(self, app: ASGIApp, catalog: Catalog) -> None:
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state: dict[str, Any] = scope.get("state") or {}
            client = scope.get("client")
            await anyio.to_thread.run_sync(
                lambda: audit.record(
                    self.catalog,
                    actor=str(state.get("actor", "anonymous")),
                    action=f"{scope['method']} {scope['path']}",
                    target=state.get("audit_target"),
                    remote=client[0] if client else "-",
                    status=status,
                )
            )


def caller(request: Request) -> Principal:
    """The principal a scope dependency admitted earlier in this request."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


def visible_image(request: Request, name: str) -> bool:
    return caller(request).sees(name)
