"""Promotion decisions and channel pointers in the catalog.

Every decision is a row, allowed or denied; a channel of an image name points at the image of its newest
allowed row (a promotion, a rollback or a demotion), so the history of a channel is its rows in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog.catalog import Catalog
from kiln.catalog.models import ImageRow, PromotionRow
from kiln.catalog.records import image_ref
from kiln.errors import NotFound

Action = Literal["promote", "rollback", "demote"]


class PromotionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    image: str
    image_name: str
    channel: str
    action: Action
    allowed: bool
    decision: dict[str, Any]
    envelope: str | None
    who: str
    at: datetime


def _record(row: PromotionRow, image: ImageRow) -> PromotionRecord:
    return PromotionRecord(
        id=row.id, image=image_ref(image), image_name=row.image_name, channel=row.channel,
        action=cast(Action, row.action), allowed=row.allowed, decision=dict(row.decision),
        envelope=row.envelope, who=row.who, at=row.at,
    )  # fmt: skip


def _image(s: Session, ref: str, catalog: Catalog) -> ImageRow:
    image = catalog.get_image(ref)
    row = s.scalar(
        select(ImageRow).where(
            ImageRow.name == image.name,
            ImageRow.version == image.version,
            ImageRow.build_number == image.build,
        )
    )
    if row is None:
        raise NotFound(f"no image {ref}")
    return row


def record(
    catalog: Catalog,
    ref: str,
    *,
    channel: str,
    action: Action,
    allowed: bool,
    decision: dict[str, Any],
    envelope: str | None,
    who: str,
    at: datetime,
) -> PromotionRecord:
    with catalog.session(write=True) as s, s.begin():
        image = _image(s, ref, catalog)
        row = PromotionRow(image_name=image.name, channel=channel, image_id=image.id, action=action,
                           allowed=allowed, decision=decision, envelope=envelope, who=who, at=at)  # fmt: skip
        s.add(row)
        s.flush()
        return _record(row, image)


def history(catalog: Catalog, name: str | None = None, channel: str | None = None) -> list[PromotionRecord]:
    """Decisions oldest first, for one image name and/or channel."""
    with catalog.session() as s:
        query = select(PromotionRow, ImageRow).join(ImageRow, PromotionRow.image_id == ImageRow.id)
        if name is not None:
            query = query.where(PromotionRow.image_name == name)
        if channel is not None:
            query = query.where(PromotionRow.channel == channel)
        rows = s.execute(query.order_by(PromotionRow.id)).all()
        return [_record(p, i) for p, i in rows]


def get(catalog: Catalog, promotion_id: int) -> PromotionRecord:
    with catalog.session() as s:
        row = s.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFound(f"no promotion decision {promotion_id}", hint="see: kiln channels history NAME")
        image = s.get(ImageRow, row.image_id)
        assert image is not None
        return _record(row, image)


def pointer_moves(catalog: Catalog, name: str, channel: str) -> list[PromotionRecord]:
    """The allowed moves of a channel's pointer, oldest first (the last is where it points)."""
    return [r for r in history(catalog, name, channel) if r.allowed]


def current(catalog: Catalog, name: str, channel: str) -> PromotionRecord | None:
    moves = pointer_moves(catalog, name, channel)
    return moves[-1] if moves else None


def entered(catalog: Catalog, ref: str, channel: str) -> datetime | None:
    """When ``ref`` first became the channel's image (None: never)."""
    image = catalog.get_image(ref)
    for move in pointer_moves(catalog, image.name, channel):
        if move.image == image.ref:
            return move.at
    return None
