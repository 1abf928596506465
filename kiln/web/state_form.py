"""Changing an image's lifecycle state from its page: a CSRF-checked form for sessions whose token has
``images:write`` (and may see the image), with a confirmation step before retiring, which deletes the
artifacts. The same move, actor and audit record as ``POST /api/v1/images/…/state``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kiln.api.deps import BuildNumber, CatalogDep, ConfigDep, ImageName, ImageVersion, StoreDep
from kiln.api.states import change_image_state
from kiln.web.routes import page
from kiln.web.session import form_principal

router = APIRouter(include_in_schema=False)
Target = Annotated[Literal["active", "deprecated", "disabled", "retired"], Form()]
Reason = Annotated[str, Form(min_length=1, max_length=1000, pattern=r"\S")]


@router.post("/images/{name}/{version}/{build}/state", response_model=None)
def state_form(
    request: Request, catalog: CatalogDep, store: StoreDep, config: ConfigDep, name: ImageName,
    version: ImageVersion, build: BuildNumber, state: Target, reason: Reason,
    csrf: Annotated[str, Form(max_length=100)] = "", confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:  # fmt: skip
    ref = f"{name}@{version}/{build}"
    principal = form_principal(request, csrf, name=name, ref=ref, scope="images:write", action=state)
    image = catalog.get_image(ref)
    url = f"/images/{name}/{version}/{build}"
    if state == "retired" and confirm != "yes":  # nothing changes until the second, confirming post
        artifacts = [(a.kind, a.path.rstrip("/").rsplit("/", 1)[-1], a.size) for a in image.artifacts]
        context = {"who": principal, "image": image, "reason": reason, "artifacts": artifacts,
                   "action": url + "/state", "back": url}  # fmt: skip
        response: Response = page(request, "confirm_retire.html", context)
        return response
    change_image_state(store, catalog, config.settings, ref, state, actor=f"{principal.name} (web)",
                       reason=reason.strip())  # fmt: skip
    return RedirectResponse(url + "#history", status_code=303)
