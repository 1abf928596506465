"""``/pipelines``: applied pipelines with their next run and last runs, their run history, manual runs
(``pipelines:run``) and enable/disable (``pipelines:write``). Reading needs ``builds:read``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kiln.api.auth import PipelinesReader, PipelinesRunner, PipelinesWriter, caller
from kiln.api.deps import CatalogDep
from kiln.api.schemas import Page, page_of
from kiln.errors import NotFound
from kiln.pipelines.clock import system_clock
from kiln.pipelines.overview import last_scheduled_skip, next_run
from kiln.pipelines.records import PipelineRecord, RunRecord
from kiln.pipelines.store import PipelineStore

router = APIRouter(prefix="/pipelines", tags=["pipelines"])

PipelineName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(pattern=r"^\d{1,9}$", description="next_cursor of the previous page.")]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ParamValue = Annotated[str, StringConstraints(max_length=4096)]


class PipelineSummary(PipelineRecord):
    next_run: datetime | None = Field(description="Next scheduled run (null: no schedule, or disabled).")
    last_run: RunRecord | None


class PipelineDetail(PipelineRecord):
    next_run: datetime | None
    runs: list[RunRecord] = Field(description="The newest runs, newest first.")
    last_scheduled_skip: RunRecord | None = Field(
        description="The newest scheduled run, when it was skipped (its reason says why)."
    )


class RunRequest(BaseModel):
    """Component parameter overrides for this run (checked against the recipe's components)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=100)


def _visible(request: Request, store: PipelineStore, name: str) -> PipelineRecord:
    """The pipeline, if the token may see the image it builds (else the same 404 as a missing one)."""
    p = store.get(name)
    if not caller(request).sees(p.image):
        raise NotFound(f"no pipeline {name!r}")
    return p


@router.get("", summary="Applied pipelines with schedule, next run and last run")
def list_pipelines(request: Request, _: PipelinesReader, catalog: CatalogDep, cursor: Cursor = None,
                   limit: Limit = 50) -> Page[PipelineSummary]:  # fmt: skip
    store, now, who = PipelineStore(catalog), system_clock(), caller(request)
    found = [p for p in store.pipelines() if who.sees(p.image)]
    page = page_of(found, cursor, limit)
    items = [
        PipelineSummary(**dict(p), next_run=next_run(p, now),
                        last_run=next(iter(store.runs(p.name, limit=1)), None))
        for p in page.items
    ]  # fmt: skip
    return Page[PipelineSummary](items=items, next_cursor=page.next_cursor)


@router.get("/{name}", summary="A pipeline: definition, next run, last runs, why a scheduled run was skipped")
def show_pipeline(request: Request, _: PipelinesReader, catalog: CatalogDep, name: PipelineName,
                  runs: Annotated[int, Query(ge=1, le=100)] = 10) -> PipelineDetail:  # fmt: skip
    store = PipelineStore(catalog)
    p = _visible(request, store, name)
    newest = store.runs(name, limit=runs)
    scheduled = [r for r in store.runs(name) if r.trigger.type == "schedule"][:1]
    return PipelineDetail(**dict(p), next_run=next_run(p, system_clock()), runs=newest,
                          last_scheduled_skip=last_scheduled_skip(scheduled))  # fmt: skip


@router.get("/{name}/runs", summary="Every run of a pipeline, newest first")
def pipeline_runs(request: Request, _: PipelinesReader, catalog: CatalogDep, name: PipelineName,
                  cursor: Cursor = None, limit: Limit = 50) -> Page[RunRecord]:  # fmt: skip
    store = PipelineStore(catalog)
    _visible(request, store, name)
    start = int(cursor) if cursor else 0
    runs = store.runs(name, limit=start + limit + 1)
    return Page[RunRecord](items=runs[start : start + limit],
                           next_cursor=str(start + limit) if len(runs) > start + limit else None)  # fmt: skip


@router.post(
    "/{name}/runs",
    status_code=202,
    summary="Queue a manual run (pipelines:run); a running kiln daemon builds it",
)
def run_pipeline(request: Request, who: PipelinesRunner, catalog: CatalogDep, name: PipelineName,
                 body: RunRequest | None = None) -> RunRecord:  # fmt: skip
    from kiln.pipelines.manual import queue_manual_run

    request.state.audit_target = f"pipeline {name}"
    store = PipelineStore(catalog)
    _visible(request, store, name)
    params = body.params if body is not None else {}
    return queue_manual_run(store, name, params, by=f"api token {who.name}")


def _set_enabled(request: Request, catalog: CatalogDep, name: str, enabled: bool, who: str) -> PipelineRecord:
    request.state.audit_target = f"pipeline {name}"
    store = PipelineStore(catalog)
    _visible(request, store, name)
    return store.set_enabled(name, enabled, reason=f"disabled through the API by {who}")


@router.post("/{name}/enable", summary="Let schedules and triggers start runs again (pipelines:write)")
def enable(request: Request, who: PipelinesWriter, catalog: CatalogDep, name: PipelineName) -> PipelineRecord:
    return _set_enabled(request, catalog, name, True, who.name)


@router.post("/{name}/disable", summary="Stop schedules and triggers from starting runs (pipelines:write)")
def disable(
    request: Request, who: PipelinesWriter, catalog: CatalogDep, name: PipelineName
) -> PipelineRecord:
    return _set_enabled(request, catalog, name, False, who.name)
