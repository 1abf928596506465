"""Typed dependencies of the routes (``CatalogDep``, ``StoreDep``, ``ConfigDep``, ``ImageRefDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from kiln.api.cache import ReadCache
from kiln.api.config import ApiConfig
from kiln.catalog import Catalog, ImageRecord
from kiln.catalog.schemas import NAME
from kiln.errors import NotFound
from kiln.executors.base import Executor
from kiln.store import Store

NAME_PATTERN = NAME.pattern
VERSION_PATTERN = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"
BUILD_ID_PATTERN = r"^[0-9a-f]{1,32}$"


def get_config(request: Request) -> ApiConfig:
    config: ApiConfig = request.app.state.config
    return config


def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


def get_cache(request: Request) -> ReadCache:
    cache: ReadCache = request.app.state.cache
    return cache


ConfigDep = Annotated[ApiConfig, Depends(get_config)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
StoreDep = Annotated[Store, Depends(get_store)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
CacheDep = Annotated[ReadCache, Depends(get_cache)]

ImageName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=255, description="Image name.")]
ImageVersion = Annotated[str, Path(pattern=VERSION_PATTERN, max_length=64, description="x.y.z")]
BuildNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="Build number of the version.")]
BuildId = Annotated[
    str, Path(pattern=BUILD_ID_PATTERN, description="Build id (32 hex digits) or a unique prefix.")
]


def get_image(
    request: Request, catalog: CatalogDep, name: ImageName, version: ImageVersion, build: BuildNumber
) -> ImageRecord:
    """The image the path names, if the caller's token may see it (else the same 404 as a missing one)."""
    from kiln.api.auth import visible_image

    ref = f"{name}@{version}/{build}"
    if not visible_image(request, name):
        raise NotFound(f"no image {ref}")
    return catalog.get_image(ref)


ImageDep = Annotated[ImageRecord, Depends(get_image)]
