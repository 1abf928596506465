"""API tokens: ``kiln_<id>_<secret>``, shown once; the catalog keeps the id, scopes, times and an
HMAC-SHA256 of the token keyed with the server secret (why not argon2: see the README)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from kiln.access.scopes import AccessInputError, allows, check_scope
from kiln.catalog import Catalog
from kiln.catalog.models import TokenRow
from kiln.catalog.schemas import as_utc
from kiln.errors import KilnError, NotFound

TOKEN = re.compile(r"^kiln_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
IMAGE_PATTERN = re.compile(r"^[a-z0-9._*?\[\]!-]{1,255}$")
DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
LAST_USED_EVERY = timedelta(seconds=60)  # how stale last_used may get (saves a write per request)


class TokenInfo(BaseModel):
    """A token as listings show it (never the secret)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    scopes: list[str]
    images: list[str] | None
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    last_used: datetime | None


class Principal(BaseModel):
    """Who is calling: a token's name and scopes, or the anonymous reader."""

    model_config = ConfigDict(frozen=True)

    name: str
    token_id: str | None
    scopes: frozenset[str]
    images: tuple[str, ...] | None = None  # name patterns the token may see (None: all)

    def allows(self, scope: str) -> bool:
        return allows(self.scopes, scope)

    def sees(self, image_name: str) -> bool:
        return self.images is None or any(fnmatchcase(image_name, p) for p in self.images)


ANONYMOUS = Principal(name="anonymous", token_id=None, scopes=frozenset())


class TokenRefused(KilnError):
    """The presented token is unknown, malformed, expired or revoked (HTTP 401)."""


def check_pattern(pattern: str) -> str:
    """An image name pattern (shell-style: ``team-a-*``, ``web``, ``base-[0-9]*``)."""
    if not IMAGE_PATTERN.match(pattern):
        hint = "image names and the wildcards * ? [ ]; e.g. --images 'team-a-*'"
        raise AccessInputError(f"invalid image pattern {pattern!r}", hint=hint)
    return pattern


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``."""
    match = DURATION.match(text.strip())
    if not match:
        raise AccessInputError(f"invalid duration {text!r}", hint="e.g. 90d, 12h, 30m or 2w")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def digest(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id, name=row.name, scopes=list(row.scopes), images=row.images, created=row.created,
        expires=row.expires, revoked=row.revoked, last_used=row.last_used,
    )  # fmt: skip


def create_token(
    catalog: Catalog,
    secret: bytes,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None,
    now: datetime | None = None,
    images: list[str] | None = None,
) -> tuple[str, TokenInfo]:
    """A new token (returned once, in clear) and its listing."""
    if not NAME.match(name):
        raise AccessInputError(f"invalid token name {name!r}", hint="letters, digits, '.', '_', '@', '-'")
    if not scopes:
        raise AccessInputError("a token needs at least one --scope", hint="e.g. --scope images:read")
    granted = sorted({check_scope(s) for s in scopes})
    patterns = sorted({check_pattern(p) for p in images}) if images else None
    now = now or datetime.now(UTC)
    token_id = secrets.token_hex(6)
    token = f"kiln_{token_id}_{secrets.token_urlsafe(32)}"
    with catalog.session(write=True) as s, s.begin():
        if s.scalar(select(TokenRow.id).where(TokenRow.name == name)) is not None:
            raise KilnError(f"a token named {name!r} exists", hint="revoke it first, or choose another name")
        row = TokenRow(
            id=token_id,
            name=name,
            digest=digest(secret, token),
            scopes=granted,
            images=patterns,
            created=now,
            expires=now + expires_in if expires_in else None,
            revoked=None,
            last_used=None,
        )
        s.add(row)
        s.flush()
        return token, _info(row)


def list_tokens(catalog: Catalog) -> list[TokenInfo]:
    with catalog.session() as s:
        return [_info(r) for r in s.scalars(select(TokenRow).order_by(TokenRow.created, TokenRow.name))]


def revoke_token(catalog: Catalog, which: str, now: datetime | None = None) -> TokenInfo:
    """Revoke by id or name (revoking twice keeps the first time)."""
    with catalog.session(write=True) as s, s.begin():
        row = s.scalar(select(TokenRow).where((TokenRow.id == which) | (TokenRow.name == which)))
        if row is None:
            raise NotFound(f"no token {which!r}", hint="see: kiln tokens list")
        row.revoked = row.revoked or now or datetime.now(UTC)
        s.flush()
        return _info(row)


def authenticate(catalog: Catalog, secret: bytes, token: str, now: datetime | None = None) -> Principal:
    """The principal a presented token stands for; TokenRefused if it is not valid now."""
    return verify(catalog, secret, token, now)[0]


def _match(token: str) -> re.Match[str]:
    match = TOKEN.match(token)
    if not match:
        raise TokenRefused(
            "malformed API token", hint="tokens look like kiln_<id>_<secret>; see kiln tokens create"
        )
    return match


def verify(
    catalog: Catalog, secret: bytes, token: str, now: datetime | None = None
) -> tuple[Principal, datetime | None]:
    """:func:`authenticate`, with the token's expiry (what :mod:`kiln.api.tokencache` needs)."""
    match = _match(token)
    now = now or datetime.now(UTC)
    with catalog.session() as s:
        row = s.get(TokenRow, match[1])
        if row is None or not hmac.compare_digest(row.digest, digest(secret, token)):
            raise TokenRefused("unknown API token")
        if row.revoked is not None:
            raise TokenRefused(f"API token {row.name!r} was revoked")
        if row.expires is not None and as_utc(row.expires) <= now:
            raise TokenRefused(f"API token {row.name!r} expired at {row.expires:%Y-%m-%d %H:%M} UTC")
        stale = row.last_used is None or now - as_utc(row.last_used) > LAST_USED_EVERY
        images = tuple(row.images) if row.images is not None else None
        principal = Principal(name=row.name, token_id=row.id, scopes=frozenset(row.scopes), images=images)
        expires = as_utc(row.expires) if row.expires is not None else None
    if stale:
        with catalog.session(write=True) as s, s.begin():
            fresh = s.get(TokenRow, match[1])
            if fresh is not None:
                fresh.last_used = now
    return principal, expires
