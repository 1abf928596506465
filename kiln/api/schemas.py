"""The API's own response and request models (catalog records are reused as they are)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kiln.catalog import ImageRecord, PackageRecord
from kiln.catalog.fleet import CveHit
from kiln.catalog.parents import Outdated

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Page(_Model, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next (null: last page)."""

    items: list[T]
    next_cursor: str | None = None


class ImageHit(_Model):
    """An image version with its labels, and what matched: its packages (``?package=``) and its
    findings of the vulnerability (``?cve=``)."""

    ref: str
    image: ImageRecord
    packages: list[PackageRecord] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    findings: list[CveHit] = Field(default_factory=list)
    outdated: str | None = Field(default=None, description="With ?outdated=true: why it is out of date.")


class ImageDetail(_Model):
    ref: str
    image: ImageRecord
    lineage: list[str]
    children: list[str]
    labels: dict[str, str] = Field(default_factory=dict)
    outdated: Outdated | None = None


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


def page_of(items: list[T], cursor: str | None, limit: int) -> Page[T]:
    """``cursor`` is the position after the previous page (decimal): pages are stable while the catalog
    only grows at the end of the order, and a cursor past the end is an empty last page."""
    start = int(cursor) if cursor else 0
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return Page[T](items=chunk, next_cursor=str(start + limit) if more else None)
