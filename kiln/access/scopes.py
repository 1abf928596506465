"""The scopes a token can carry; ``admin`` allows everything.

``registry:write`` publishes components and recipes: a published version is immutable and every later
build may use it, so publishing is neither an image write nor a build (and needs no ``admin``)."""

from __future__ import annotations

import re

from kiln.errors import KilnError

SCOPES = (
    "images:read",
    "images:write",
    "builds:read",
    "builds:write",
    "pipelines:run",
    "pipelines:write",
    "registry:write",
    "admin",
)


class AccessInputError(KilnError):
    """A bad scope, duration or token name (a usage error: exit code 2)."""

    exit_code = 2


CHANNEL_SCOPE = re.compile(r"^channels:promote:[a-z0-9][a-z0-9._-]{0,63}$")


def check_scope(scope: str) -> str:
    if scope in SCOPES or CHANNEL_SCOPE.match(scope):
        return scope
    raise AccessInputError(
        f"unknown scope {scope!r}",
        hint="scopes: " + ", ".join(SCOPES) + ", channels:promote:<channel>",
    )


def allows(granted: frozenset[str], wanted: str) -> bool:
    return "admin" in granted or wanted in granted
