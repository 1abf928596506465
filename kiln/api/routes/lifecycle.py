"""Writes and history of one image version: labels, lifecycle state (who, when, why), its lineage as a
graph, the full diff against another version, and where it was distributed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kiln.api.auth import ImagesWriter, caller, require
from kiln.api.deps import CatalogDep, ConfigDep, ImageDep, StoreDep
from kiln.api.routes.images import IMAGE, RefParam
from kiln.catalog import distributions
from kiln.catalog.distributions import DistributionRecord
from kiln.catalog.labels import check_key, check_value, remove_labels, set_labels
from kiln.catalog.lineage import LineageGraph
from kiln.catalog.refs import ref_name
from kiln.diffing.images import ImageDiff, diff_images
from kiln.errors import NotFound
from kiln.lifecycle.states import StateChange, history

router = APIRouter(prefix="/images", tags=["lifecycle"])
reading = [Depends(require("images:read", public=True))]  # writes need images:write alone

LabelKey = Annotated[str, Path(max_length=317, description="NAME or PREFIX/NAME, e.g. example.com/tier.")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelValue(_Body):
    value: Annotated[str, StringConstraints(max_length=63)] = ""


class Labels(_Body):
    image: str
    labels: dict[str, str]


class StateRequest(_Body):
    """The state to move to and why (the actor is the token's name)."""

    state: Literal["active", "deprecated", "disabled", "retired"]
    reason: Reason


class StateMoved(StateChange):
    """The recorded change; retiring also reports the deleted artifacts, disabling and retiring the
    distribution targets the image was taken off."""

    retire: dict[str, Any] | None = None
    unpublished: list[dict[str, Any]] = Field(default_factory=list)


@router.put(IMAGE + "/labels/{key:path}", summary="Set one label (images:write)")
def put_label(request: Request, _: ImagesWriter, catalog: CatalogDep, image: ImageDep, key: LabelKey,
              body: Annotated[LabelValue, Body()]) -> Labels:  # fmt: skip
    request.state.audit_target = f"{image.ref} label {key}"
    check_value(check_key(key), body.value)
    now = set_labels(catalog, image.ref, {key: body.value})[1]
    return Labels(image=image.ref, labels=now)


@router.delete(IMAGE + "/labels/{key:path}", summary="Remove one label (images:write)")
def delete_label(request: Request, _: ImagesWriter, catalog: CatalogDep, image: ImageDep,
                 key: LabelKey) -> Labels:  # fmt: skip
    request.state.audit_target = f"{image.ref} label {key}"
    now = remove_labels(catalog, image.ref, [key])[1]
    return Labels(image=image.ref, labels=now)


@router.post(
    IMAGE + "/state",
    summary="Deprecate, disable, retire or re-activate an image version (images:write)",
    description="Retiring deletes the version's artifacts (SBOMs, provenance and evidence are kept); "
    "disabling and retiring take it off the distribution targets its recipe names. Illegal moves "
    "(anything out of retired, to the current state) are 409 with the legal ones in the hint.",
)
def change_state(request: Request, who: ImagesWriter, catalog: CatalogDep, store: StoreDep,
                 config: ConfigDep, image: ImageDep, body: StateRequest) -> StateMoved:  # fmt: skip
    from kiln.api.states import change_image_state

    request.state.audit_target = f"{image.ref} -> {body.state}"
    moved = change_image_state(store, catalog, config.settings, image.ref, body.state, actor=who.name,
                               reason=body.reason)  # fmt: skip
    return StateMoved.model_validate(moved.as_dict())


@router.get(
    IMAGE + "/history",
    summary="Every lifecycle state change of an image version, oldest first",
    dependencies=reading,
)
def state_history(catalog: CatalogDep, image: ImageDep) -> list[StateChange]:
    return history(catalog, image.ref)


@router.get(
    IMAGE + "/lineage",
    summary="Ancestors down to the Debian or OCI root and every descendant, as nodes and edges",
    description="Image nodes the token may not see are left out with their edges.",
    dependencies=reading,
)
def lineage(request: Request, catalog: CatalogDep, image: ImageDep) -> LineageGraph:
    graph = catalog.lineage_graph(image.ref)
    who = caller(request)
    if who.images is None:
        return graph
    nodes = [n for n in graph.nodes if n.kind == "root" or who.sees(n.name)]
    kept = {n.id for n in nodes}
    edges = [e for e in graph.edges if e.parent in kept and e.child in kept]
    return graph.model_copy(update={"nodes": nodes, "edges": edges})


@router.get(
    IMAGE + "/diff/full",
    summary="Everything that changed since another version: packages, CVEs, components, config, "
    "compliance score, size and (files=true) the file tree",
    dependencies=reading,
)
def full_diff(
    request: Request, catalog: CatalogDep, store: StoreDep, image: ImageDep, against: RefParam,
    files: Annotated[bool, Query(description="Compare the layers' file trees too (slower).")] = False,
) -> ImageDiff:  # fmt: skip
    from kiln.evidence.vulndb import VulnDb

    if not caller(request).sees(ref_name(against)):
        raise NotFound(f"no image {against}")
    return diff_images(catalog, store, against, image.ref, db=VulnDb.open(store), files=files)


@router.get(
    IMAGE + "/distributions", summary="Every distribution attempt of an image version", dependencies=reading
)
def image_distributions(catalog: CatalogDep, image: ImageDep) -> list[DistributionRecord]:
    return distributions.history(catalog, image.ref)
