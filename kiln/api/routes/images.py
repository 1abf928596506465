"""``/images``: the catalog's image versions, their packages, evidence and artifacts (read-only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, Response

from kiln.api import evidence
from kiln.api.auth import caller, require
from kiln.api.deps import CacheDep, CatalogDep, ConfigDep, ImageDep, StoreDep
from kiln.api.diff import ImageDiff, diff
from kiln.api.etag import json_answer, tagged
from kiln.api.files import artifact_location, file_below, list_files
from kiln.api.fleet import fleet_page, fleet_query
from kiln.api.problems import ApiError
from kiln.api.schemas import ArtifactFile, ImageDetail, ImageHit, Page, Verification
from kiln.catalog import PackageRecord
from kiln.catalog.labels import image_labels
from kiln.catalog.refs import ref_name
from kiln.catalog.schemas import ImageState
from kiln.errors import NotFound

router = APIRouter(
    prefix="/images", tags=["images"], dependencies=[Depends(require("images:read", public=True))]
)

IMAGE = "/{name}/{version}/{build}"
BINARY = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
FILES = {"type": "array", "items": ArtifactFile.model_json_schema()}
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(pattern=r"^\d{1,9}$", description="next_cursor of the previous page.")]


Labels = Annotated[
    list[str], Query(max_length=20, description="KEY=VALUE: only versions with this label (repeatable, AND).")
]


@router.get("", summary="List or search image versions (the filters of kiln images list)",
            response_model=Page[ImageHit])  # fmt: skip
def list_images(
    request: Request,
    catalog: CatalogDep,
    store: StoreDep,
    cache: CacheDep,
    name: Annotated[str | None, Query(max_length=255, description="Only versions of this image.")] = None,
    package: Annotated[
        str | None,
        Query(
            max_length=255,
            description="NAME or NAME<op>VERSION (< <= = >= >): a binary or source "
            "package, e.g. openssl<3.0.15-1~deb12u1.",
        ),
    ] = None,
    below: Annotated[
        str | None,
        Query(max_length=255, description="With package: only where it is older than this Debian version."),
    ] = None,
    label: Labels = [],  # noqa: B006 (FastAPI copies defaults)
    state: Annotated[ImageState | None, Query(description="Only versions in this lifecycle state.")] = None,
    cve: Annotated[
        str | None, Query(max_length=64, description="Only versions a scan would list this finding for.")
    ] = None,
    parent: Annotated[
        str | None,
        Query(
            max_length=255,
            description="Only versions built on this parent: an image reference, a "
            "digest or a literal parent such as debian:bookworm.",
        ),
    ] = None,
    outdated: Annotated[
        bool, Query(description="Only versions whose parent constraint now selects a newer version.")
    ] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    query = fleet_query(name, package, below, label, state, cve, parent, outdated)
    who = caller(request)

    def answer() -> tuple[bytes, str]:
        page = fleet_page(catalog, store, query, who.sees if who.images is not None else None,
                          int(cursor) if cursor else 0, limit)  # fmt: skip
        return tagged(page.model_dump_json().encode())

    key = ("images", query.model_dump_json(), cursor, limit, who.images)
    return json_answer(request, *cache.get(key, answer))


@router.get(IMAGE, summary="One image version with its lineage, labels and why it is out of date")
def show_image(request: Request, catalog: CatalogDep, image: ImageDep) -> ImageDetail:
    visible = caller(request).sees
    return ImageDetail(
        ref=image.ref,
        image=image,
        lineage=[
            e.ref if e.image is None or visible(e.image.name) else "(not visible)"
            for e in catalog.lineage(image.ref)
        ],
        children=[child.ref for child in catalog.children(image.ref) if visible(child.name)],
        labels=image_labels(catalog, image.ref),
        outdated=catalog.outdated_reason(image.ref),
    )


@router.get(IMAGE + "/packages", summary="Packages recorded for an image")
def packages(
    catalog: CatalogDep,
    image: ImageDep,
    q: Annotated[str | None, Query(max_length=255, description="Substring of the package name.")] = None,
) -> list[PackageRecord]:
    found = catalog.packages(image.ref)
    return [p for p in found if q is None or q in p.name or q in p.source]


@router.get(
    IMAGE + "/sbom",
    summary="The SBOM recorded by the build",
    response_class=Response,
    responses={200: {"content": {"application/spdx+json": {"schema": {"type": "object"}},
                                 "application/vnd.cyclonedx+json": {"schema": {"type": "object"}}}}},
)  # fmt: skip
def sbom(store: StoreDep, image: ImageDep, format: Literal["spdx", "cyclonedx"] = "spdx") -> Response:
    data, media = evidence.blob(store, image, "sbom-spdx" if format == "spdx" else "sbom-cyclonedx")
    return Response(data, media_type=media)


@router.get(IMAGE + "/scan", summary="Vulnerability report recorded by the build")
def scan(store: StoreDep, image: ImageDep) -> dict[str, Any]:
    return evidence.json_blob(store, image, "vulnerability-report")


@router.get(IMAGE + "/compliance", summary="OpenSCAP compliance results recorded by the build")
def compliance(store: StoreDep, image: ImageDep) -> dict[str, Any]:
    return evidence.json_blob(store, image, "compliance-results")


@router.get(IMAGE + "/provenance", summary="Signed in-toto/SLSA provenance (DSSE envelope)")
def provenance(store: StoreDep, image: ImageDep) -> dict[str, Any]:
    return evidence.json_blob(store, image, "provenance-signed")


@router.get(IMAGE + "/verification", summary="Check the provenance against artifacts and catalog")
def verification(catalog: CatalogDep, store: StoreDep, config: ConfigDep, image: ImageDep) -> Verification:
    return evidence.verify(catalog, store, image, config.verify_key)


ArtifactIndex = Annotated[int, Path(ge=0, le=1000, description="Position in the image's artifacts.")]


@router.get(
    IMAGE + "/artifacts/{index}",
    summary="Download an artifact (Range supported), or list a directory artifact's files",
    response_model=None,
    responses={200: {"content": {**BINARY["content"], "application/json": {"schema": FILES}}}, 206: BINARY},
)
def artifact(store: StoreDep, image: ImageDep, index: ArtifactIndex) -> FileResponse | list[ArtifactFile]:
    if index >= len(image.artifacts):
        raise ApiError(404, f"{image.ref} has {len(image.artifacts)} artifact(s); no #{index}")
    location = artifact_location(store, image.artifacts[index])
    if location.is_dir():
        return [ArtifactFile(path=p, size=s) for p, s in list_files(location)]
    return FileResponse(location, filename=location.name)


@router.get(
    IMAGE + "/artifacts/{index}/files/{path:path}",
    summary="Download one file of a directory artifact (an OCI layout's blob, say)",
    response_class=FileResponse,
    responses={200: BINARY, 206: BINARY},
)
def artifact_file(store: StoreDep, image: ImageDep, index: ArtifactIndex, path: str) -> FileResponse:
    if index >= len(image.artifacts):
        raise ApiError(404, f"{image.ref} has {len(image.artifacts)} artifact(s); no #{index}")
    location = artifact_location(store, image.artifacts[index])
    if not location.is_dir():
        raise ApiError(404, f"artifact #{index} of {image.ref} is a file, not a directory")
    target = file_below(location, path)
    return FileResponse(target, filename=target.name)


RefParam = Annotated[
    str,
    Query(
        pattern=r"^(kiln:)?[a-z0-9][a-z0-9._-]*@(\d+\.\d+\.\d+/\d{1,9}|[a-z][a-z0-9-]{0,31})$",
        max_length=300,
        description="name@x.y.z/build, or name@CHANNEL / kiln:name@CHANNEL (where the channel points)",
    ),
]


@router.get(IMAGE + "/diff", summary="Packages and components changed since another image version")
def image_diff(request: Request, catalog: CatalogDep, image: ImageDep, against: RefParam) -> ImageDiff:
    if not caller(request).sees(ref_name(against)):
        raise NotFound(f"no image {against}")
    return diff(catalog, catalog.get_image(against), image)
