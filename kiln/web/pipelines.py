"""Pipeline pages: every pipeline with its next run and last run, and one pipeline's run history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from kiln.api.deps import CatalogDep
from kiln.errors import NotFound
from kiln.pipelines.clock import system_clock
from kiln.pipelines.overview import last_scheduled_skip, next_run
from kiln.pipelines.store import PipelineStore
from kiln.web.routes import page
from kiln.web.session import who

router = APIRouter(include_in_schema=False)
MAX_RUNS = 200


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    principal = who(request, "builds:read")
    store, now = PipelineStore(catalog), system_clock()
    rows = [
        {"p": p, "next": next_run(p, now), "last": next(iter(store.runs(p.name, limit=1)), None)}
        for p in store.pipelines()
        if principal.sees(p.image)
    ]
    return page(request, "pipelines.html", {"who": principal, "rows": rows})


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(
    request: Request, catalog: CatalogDep, name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")]
) -> HTMLResponse:
    principal = who(request, "builds:read")
    store = PipelineStore(catalog)
    p = store.get(name)
    if not principal.sees(p.image):
        raise NotFound(f"no pipeline {name!r}")
    runs = store.runs(name, limit=MAX_RUNS)
    context = {"who": principal, "p": p, "next": next_run(p, system_clock()), "runs": runs,
               "skip": last_scheduled_skip(runs)}  # fmt: skip
    return page(request, "pipeline.html", context)
