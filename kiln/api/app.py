"""The app factory: one FastAPI application per data directory (no module-level state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kiln import __version__
from kiln.access.secret import server_secret
from kiln.api import problems
from kiln.api.auth import AuditMiddleware
from kiln.api.cache import ReadCache
from kiln.api.config import ApiConfig
from kiln.api.limits import BodyLimit
from kiln.api.routes import audit, builds, channels, events, images, lifecycle, pipelines, registry
from kiln.api.tokencache import TokenCache
from kiln.catalog import Catalog
from kiln.executors.base import executor_for
from kiln.store import Store
from kiln.web import app as web

API_PREFIX = "/api/v1"


def create_app(config: ApiConfig) -> FastAPI:
    """The API (and web UI) over ``config.data_dir``'s catalog; opens the catalog now, closes it at
    shutdown."""
    store = Store.open(config.data_dir, config.settings)
    catalog = Catalog.open(store.database_url)
    cache = ReadCache(store.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        cache.close()
        catalog.close()

    app = FastAPI(
        title="Kiln",
        version=__version__,
        summary="Golden image factory: images, SBOMs, scans, compliance, provenance and builds.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.store = store
    app.state.catalog = catalog
    app.state.cache = cache
    app.state.tokens = TokenCache(cache.revision)
    app.state.secret = server_secret(store.home)
    app.state.executor = executor_for(store, config.settings)
    app.add_middleware(BodyLimit)
    app.add_middleware(AuditMiddleware, catalog=catalog)  # outermost: refused bodies are audited too
    problems.install(app)
    routers = (
        images.router,
        lifecycle.router,
        builds.router,
        pipelines.router,
        channels.router,
        registry.router,
        audit.router,
        events.router,
    )
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, responses=problems.PROBLEM_RESPONSES)
    web.install(app)
    return app
