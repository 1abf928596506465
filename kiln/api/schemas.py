"""The API's own response and request models (catalog records are reused as they are)."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kiln.catalog import BuildRecord, ImageRecord, PackageRecord
from kiln.errors import KilnError

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Page(_Model, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next (null: last page)."""

    items: list[T]
    next_cursor: str | None = None


class ImageHit(_Model):
    """An image version, and (with ``?package=``) its packages that matched."""

    ref: str
    image: ImageRecord
    packages: list[PackageRecord] = Field(default_factory=list)


class ImageDetail(_Model):
    ref: str
    image: ImageRecord
    lineage: list[str]
    children: list[str]


class VerificationCheck(_Model):
    check: str
    ok: bool
    skipped: bool
    detail: str


class Verification(_Model):
    """Result of checking the signed provenance against the artifacts, evidence and catalog."""

    ref: str
    verified: bool
    key: str | None
    checks: list[VerificationCheck]


class ArtifactFile(_Model):
    path: str
    size: int


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("o:") and text[2:].isdigit():
            return int(text[2:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise KilnError(f"invalid cursor {cursor!r}", hint="pass the next_cursor of the previous page unchanged")


def page_of(items: list[T], cursor: str | None, limit: int) -> Page[T]:
    start = decode_cursor(cursor)
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return Page[T](items=chunk, next_cursor=encode_cursor(start + limit) if more else None)


BuildPage = Page[BuildRecord]
