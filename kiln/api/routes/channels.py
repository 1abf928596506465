"""``/channels``: where each channel of each image name points, every decision (allowed or denied,
rollbacks, demotions), and promotion (``channels:promote:<channel>``, per channel)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kiln.api.auth import ChannelPromoter, caller, require
from kiln.api.deps import CatalogDep, ConfigDep, StoreDep
from kiln.api.promote import channel_order, promote_image
from kiln.api.schemas import Page, page_of
from kiln.catalog import promotions as moves
from kiln.catalog.promotions import PromotionRecord
from kiln.catalog.refs import ref_name
from kiln.errors import NotFound

router = APIRouter(prefix="/channels", tags=["channels"])
reading = [Depends(require("images:read", public=True))]

ChannelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="Channel name.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(pattern=r"^\d{1,9}$", description="next_cursor of the previous page.")]
NameQuery = Annotated[str | None, Query(max_length=255, description="Only this image name.")]


class Channels(BaseModel):
    """Where each channel of the policy points for one image name (null: nothing there yet)."""

    model_config = ConfigDict(frozen=True)

    image_name: str
    channels: dict[str, str | None]


REF = r"^(kiln:)?[a-z0-9][a-z0-9._-]*(@(\d{1,9}\.\d{1,9}\.\d{1,9}(/[1-9]\d{0,8})?|[a-z][a-z0-9-]{0,31}))?$"


class PromoteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: Annotated[str, StringConstraints(pattern=REF, max_length=300)] = Field(
        description="NAME, NAME@x.y.z, NAME@x.y.z/BUILD or (kiln:)NAME@CHANNEL (where that channel points)"
    )


@router.get("", summary="Where each channel of each image name points", dependencies=reading)
def list_channels(request: Request, catalog: CatalogDep, store: StoreDep, name: NameQuery = None,
                  cursor: Cursor = None, limit: Limit = 50) -> Page[Channels]:  # fmt: skip
    order = channel_order(store)
    who = caller(request)
    names = sorted({r.image_name for r in moves.history(catalog, name) if who.sees(r.image_name)})
    page = page_of(names, cursor, limit)
    items = [
        Channels(image_name=n, channels={c: (p.image if (p := moves.current(catalog, n, c)) else None)
                                         for c in order})
        for n in page.items
    ]  # fmt: skip
    return Page[Channels](items=items, next_cursor=page.next_cursor)


@router.get("/history", summary="Every decision, oldest first (allowed or denied, rollbacks, demotions)",
            dependencies=reading)  # fmt: skip
def channel_history(
    request: Request, catalog: CatalogDep, name: NameQuery = None,
    channel: Annotated[str | None, Query(max_length=64, description="Only this channel.")] = None,
    cursor: Cursor = None, limit: Limit = 50,
) -> Page[PromotionRecord]:  # fmt: skip
    who = caller(request)
    return page_of(
        [r for r in moves.history(catalog, name, channel) if who.sees(r.image_name)], cursor, limit
    )


@router.post(
    "/{channel}/promotions",
    status_code=201,
    summary="Promote an image version into a channel (channels:promote:<channel>)",
    description="The channel's policy (DATA_DIR/promotion-policy.yaml, else the built-in one) is evaluated "
    "over the image's evidence and the decision recorded and signed either way; a denied promotion is "
    "409 naming each failed rule.",
)
def promote(request: Request, who: ChannelPromoter, catalog: CatalogDep, store: StoreDep, config: ConfigDep,
            channel: ChannelName, body: PromoteRequest) -> PromotionRecord:  # fmt: skip
    request.state.audit_target = f"{body.ref} -> {channel}"
    if not caller(request).sees(ref_name(body.ref)):  # before resolving: a channel's content stays hidden
        raise NotFound(f"no image {body.ref}")
    image = catalog.get_image(body.ref)
    return promote_image(catalog, store, config.settings, image.ref, channel, who=f"{who.name} (api token)")
