"""Promoting an image from its page: a form (CSRF-checked) for the channels the session's token may
promote to; the same policy, signed decision and audit record as ``POST /api/v1/channels/…``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from kiln.access.tokens import Principal
from kiln.api.deps import BuildNumber, CatalogDep, ConfigDep, ImageName, ImageVersion, StoreDep
from kiln.api.promote import channel_order, promote_image
from kiln.catalog import ImageRecord
from kiln.lifecycle.states import UNUSABLE
from kiln.store import Store
from kiln.web.session import form_principal

router = APIRouter(include_in_schema=False)
Channel = Annotated[str, Form(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def promotable(principal: Principal, store: Store, image: ImageRecord) -> list[str]:
    """Channels the form offers: those of the policy the token may promote to (none for an unusable image)."""
    if image.state in UNUSABLE or principal.token_id is None:
        return []
    return [c for c in channel_order(store) if principal.allows(f"channels:promote:{c}")]


@router.post("/images/{name}/{version}/{build}/promote")
def promote_form(
    request: Request, catalog: CatalogDep, store: StoreDep, config: ConfigDep, name: ImageName,
    version: ImageVersion, build: BuildNumber, channel: Channel, csrf: Annotated[str, Form(max_length=100)],
) -> RedirectResponse:  # fmt: skip
    ref = f"{name}@{version}/{build}"
    scope = f"channels:promote:{channel}"
    principal = form_principal(request, csrf, name=name, ref=ref, scope=scope, action=channel)
    promote_image(catalog, store, config.settings, ref, channel, who=f"{principal.name} (web)")
    return RedirectResponse(f"/images/{name}/{version}/{build}", status_code=303)
