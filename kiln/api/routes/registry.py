"""``/registry``: published components and recipes (list, show with the document, publish with
``registry:write``); ``/components`` (built-in names, kept for v1 clients) and ``/vulndb``."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, StringConstraints

from kiln.api.auth import RegistryWriter, require
from kiln.api.deps import CatalogDep, StoreDep
from kiln.api.problems import ApiError, status_of
from kiln.api.schemas import Page, page_of
from kiln.errors import KilnError
from kiln.registry.schemas import (
    ComponentWithDocument,
    PublishedComponent,
    PublishedRecipe,
    PublishOutcome,
    RecipeWithDocument,
)
from kiln.store import Store

router = APIRouter(tags=["registry"])
reading = [Depends(require("images:read", public=True))]

MAX_DOCUMENT = 1 << 20
RegistryName = Annotated[
    str, PathParam(pattern=r"^[a-z0-9][a-z0-9._/-]{0,127}$", description="Registry name.")
]
_N = r"(0|[1-9]\d{0,8})"
Pattern = Annotated[str, Query(pattern=rf"^(latest|x(\.x){{0,2}}|{_N}\.x(\.x)?|{_N}\.{_N}\.(x|{_N}))$",
                               max_length=64, description="Exact version, trailing wildcard (1.x, 1.2.x) or "
                               "latest.")]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(pattern=r"^\d{1,9}$", description="next_cursor of the previous page.")]
Version = Annotated[str, StringConstraints(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")]


class Feed(BaseModel):
    source: str
    location: str
    digest: str
    records: int
    vulnerabilities: int
    imported: datetime


class ComponentUpload(BaseModel):
    """An AWSTOE component document's text; ``version`` if the document has no ``version:``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    document: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOCUMENT)]
    version: Version | None = None


class Deprecation(BaseModel):
    """The exact version to deprecate and why (shown whenever a build resolves it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, StringConstraints(pattern=rf"^{_N}\.{_N}\.{_N}$")]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"\S")]


class RecipeUpload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    recipe: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOCUMENT)]


@router.get("/components", summary="Built-in components a recipe can name (see /registry/components)",
            dependencies=reading)  # fmt: skip
def components() -> list[str]:
    from kiln.recipes.loader import builtin_components

    return builtin_components()


@router.get("/vulndb", summary="Feeds in the vulnerability database (empty: scans cannot run)",
            dependencies=reading)  # fmt: skip
def vulndb(store: StoreDep) -> list[Feed]:
    from kiln.evidence.vulndb import VulnDb

    return [
        Feed(source=s.name, location=s.location, digest=s.digest, records=s.records,
             vulnerabilities=s.vulnerabilities, imported=datetime.fromtimestamp(s.imported_at, UTC))
        for s in VulnDb.open(store).sources()
    ]  # fmt: skip


@router.get("/registry/components", summary="Published component versions, built-ins included",
            dependencies=reading)  # fmt: skip
def list_components(catalog: CatalogDep, name: Annotated[str | None, Query(max_length=128)] = None,
                    cursor: Cursor = None, limit: Limit = 50) -> Page[PublishedComponent]:  # fmt: skip
    from kiln.registry.components import list_components as listed

    return page_of(listed(catalog, name), cursor, limit)


@router.get(
    "/registry/components/{name:path}",
    summary="One component version with its document",
    dependencies=reading,
)
def show_component(
    catalog: CatalogDep, name: RegistryName, version: Pattern = "latest"
) -> ComponentWithDocument:
    from kiln.registry.components import get_component

    return get_component(catalog, name, version)


@router.post(
    "/registry/components/{name:path}/deprecate",
    summary="Deprecate one component version (registry:write), as kiln components deprecate",
    description="Still usable, with a warning; wildcard references prefer active versions. Deprecating "
    "a deprecated version again is a no-op (the first reason stays).",
)
def deprecate_component(request: Request, who: RegistryWriter, catalog: CatalogDep, name: RegistryName,
                        body: Deprecation) -> PublishedComponent:  # fmt: skip
    from kiln.registry.components import deprecate_component as deprecate

    request.state.audit_target = f"component {name}@{body.version}"
    return deprecate(catalog, name, body.version, reason=body.reason, who=f"api token {who.name}")


@router.get("/registry/recipes", summary="Published recipe versions", dependencies=reading)
def list_recipes(catalog: CatalogDep, name: Annotated[str | None, Query(max_length=128)] = None,
                 cursor: Cursor = None, limit: Limit = 50) -> Page[PublishedRecipe]:  # fmt: skip
    from kiln.registry.recipes import list_recipes as listed

    return page_of(listed(catalog, name), cursor, limit)


@router.get("/registry/recipes/{name:path}", summary="One recipe version with its text", dependencies=reading)
def show_recipe(catalog: CatalogDep, name: RegistryName, version: Pattern = "latest") -> RecipeWithDocument:
    from kiln.registry.recipes import get_recipe

    return get_recipe(catalog, name, version)


def _uploaded(store: Store, file_name: str, text: str) -> Path:
    folder = store.home / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    path = folder / file_name
    path.write_text(text)
    return path


def _without_folder(exc: KilnError, folder: Path) -> ApiError:
    """The library's error with the server-side upload folder cut from its paths (``component.yaml:3``)."""
    prefix = f"{folder}/"
    error = ApiError(status_of(exc), exc.message.replace(prefix, ""),
                     hint=exc.hint.replace(prefix, "") if exc.hint else None)  # fmt: skip
    issues = getattr(exc, "issues", None)
    if issues:
        error.issues = [str(i).replace(prefix, "") for i in issues]  # type: ignore[attr-defined]
    return error


def _publish(request: Request, response: Response, store: Store, file_name: str, text: str,
             run: Callable[[Path], PublishOutcome]) -> PublishOutcome:  # fmt: skip
    path = _uploaded(store, file_name, text)
    try:
        outcome = run(path)
    except KilnError as exc:
        raise _without_folder(exc, path.parent) from None
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    request.state.audit_target = f"{outcome.kind} {outcome.name}@{outcome.version}"
    response.status_code = 201 if outcome.created else 200
    return outcome


@router.post(
    "/registry/components",
    summary="Validate and publish a component document as NAME@VERSION (registry:write)",
    description="201: published; 200: the same name, version and content were already there; 409: the "
    "version exists with other content (published versions are immutable).",
    responses={201: {"model": PublishOutcome}},
)
def publish_component(request: Request, response: Response, who: RegistryWriter, catalog: CatalogDep,
                      store: StoreDep, body: ComponentUpload) -> PublishOutcome:  # fmt: skip
    from kiln.registry.components import publish_component as publish

    by = f"api token {who.name}"
    return _publish(request, response, store, "component.yaml", body.document,
                    lambda p: publish(catalog, p, version=body.version, who=by))  # fmt: skip


@router.post(
    "/registry/recipes",
    summary="Validate and publish a recipe as NAME@VERSION (registry:write)",
    description="201: published; 200: already there with the same content; 409: other content. A "
    "published recipe names components by registry reference, not by local file.",
    responses={201: {"model": PublishOutcome}},
)
def publish_recipe(request: Request, response: Response, who: RegistryWriter, catalog: CatalogDep,
                   store: StoreDep, body: RecipeUpload) -> PublishOutcome:  # fmt: skip
    from kiln.api.submit import check_uploaded
    from kiln.registry.recipes import publish_recipe as publish

    # As for an uploaded build: a published recipe is built on this server later, so it may not name
    # the server's files (secrets, a signing key) any more than an uploaded one may.
    check_uploaded(body.recipe, {})
    return _publish(
        request,
        response,
        store,
        "recipe.yaml",
        body.recipe,
        lambda p: publish(catalog, p, who=f"api token {who.name}"),
    )
