"""Pages: catalog search, image version, builds and a build's log (refreshed by htmx while it runs);
pipelines are in :mod:`kiln.web.pipelines`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from kiln.access.tokens import Principal, TokenRefused, authenticate
from kiln.api import evidence
from kiln.api.deps import (
    BuildId,
    BuildNumber,
    CacheDep,
    CatalogDep,
    ConfigDep,
    ImageName,
    ImageVersion,
    StoreDep,
)
from kiln.api.diff import diff
from kiln.api.fleet import fleet_query
from kiln.api.logs import log_file, read_records
from kiln.api.problems import ApiError
from kiln.catalog import BuildRecord, Catalog, ImageRecord, LineageEntry
from kiln.catalog.buildlog import clock, describe, where
from kiln.catalog.fleet import STATES, query_page
from kiln.errors import KilnError, NotFound, UsageError
from kiln.evidence.collect import evidence_summary
from kiln.units import human_size
from kiln.web.assets import HTMX_FILE, HTMX_SHA256, TEMPLATES, subresource_integrity
from kiln.web.lifecycle import lifecycle_facts, movable
from kiln.web.lineage import layout
from kiln.web.promote import promotable
from kiln.web.session import check_csrf, clear_session, csrf_token, set_cookies, who

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.globals.update(htmx_file=HTMX_FILE, htmx_integrity=subresource_integrity(HTMX_SHA256),
                             size=human_size)  # fmt: skip
MAX_HITS = 500
MAX_LOG_LINES = 5000


def image_url(image: ImageRecord) -> str:
    return f"/images/{image.name}/{image.version}/{image.build}"


templates.env.globals["url"] = image_url


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    csrf = csrf_token(request)
    response = templates.TemplateResponse(request, name, {**context, "csrf": csrf}, status_code=status)
    if request.cookies.get("kiln_csrf") != csrf:
        set_cookies(response, csrf=csrf, token=None, secure=request.app.state.config.secure_cookies)
    return response


@dataclass(frozen=True)
class Hit:
    ref: str
    url: str
    image: ImageRecord
    packages: list[Any]
    summary: dict[str, Any]


@router.get("/", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    catalog: CatalogDep,
    q: Annotated[str | None, Query(max_length=255)] = None,
    package: Annotated[str | None, Query(max_length=255)] = None,
    below: Annotated[str | None, Query(max_length=255)] = None,
    label: Annotated[str | None, Query(max_length=400)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    principal = who(request, "images:read")
    package, below, q, label, state = package or None, below or None, q or None, label or None, state or None
    error = None

    def shown(name: str, version: str, build: int) -> bool:
        return principal.sees(name) and (not q or q in name)

    found: list[tuple[ImageRecord, list[Any]]] = []
    total = 0
    try:
        if state is not None and state not in STATES:
            raise UsageError(f"unknown state {state!r}", hint="states: " + ", ".join(STATES))
        query = fleet_query(None, package, below, [label] if label else [], state,
                            None, None)  # fmt: skip
        matches, total = query_page(catalog, query, 0, MAX_HITS, keep=shown)
        found = [(m.image, m.packages) for m in matches]
    except KilnError as exc:
        error = exc.message
    hits = [Hit(i.ref, image_url(i), i, p, evidence_summary(i.evidence)) for i, p in found]
    context = {"who": principal, "hits": hits, "total": total, "truncated": total > len(hits), "q": q,
               "package": package, "below": below, "label": label, "state": state, "states": STATES,
               "error": error}  # fmt: skip
    return page(request, "catalog.html", context)


def visible(principal: Principal, catalog: Catalog, ref: str) -> ImageRecord:
    """The image, if the session's token may see it (else the same 404 as a missing image)."""
    if not principal.sees(ref.partition("@")[0]):
        raise NotFound(f"no image {ref}")
    return catalog.get_image(ref)


def _optional(store: StoreDep, image: ImageRecord, kind: str) -> dict[str, Any] | None:
    try:
        return evidence.json_blob(store, image, kind)
    except ApiError:
        return None


def _image_facts(
    catalog: Catalog, store: StoreDep, principal: Principal, image: ImageRecord, pq: str | None
) -> dict[str, Any]:
    """What the image page shows from the catalog and the evidence blobs (cached per catalog revision)."""
    compliance = _optional(store, image, "compliance-results")
    failed = [
        r for r in (compliance or {}).get("rules", []) if r.get("result") not in ("pass", "notapplicable")
    ]
    api = f"/api/v1/images/{image.name}/{image.version}/{image.build}/artifacts"
    artifacts = [
        {"kind": a.kind, "name": a.path.rstrip("/").rsplit("/", 1)[-1], "size": a.size, "digest": a.digest,
         "url": f"{api}/{index}", "path": a.path}
        for index, a in enumerate(image.artifacts)
    ]  # fmt: skip
    packages = [p for p in catalog.packages(image.ref) if not pq or pq in p.name or pq in p.source]
    hidden = LineageEntry(ref="(not visible)", image=None)
    lineage = [
        e if e.image is None or principal.sees(e.image.name) else hidden for e in catalog.lineage(image.ref)
    ]
    children = [c for c in catalog.children(image.ref) if principal.sees(c.name)]
    return {
        **lifecycle_facts(catalog, store, image),
        "image": image, "lineage": lineage, "children": children,
        "graph": layout(image, lineage, children, image_url),
        "scan": _optional(store, image, "vulnerability-report"),
        "compliance": compliance, "failed": failed, "artifacts": artifacts, "packages": packages,
    }  # fmt: skip


@router.get("/images/{name}/{version}/{build}", response_class=HTMLResponse)
def image_page(
    request: Request,
    catalog: CatalogDep,
    cache: CacheDep,
    store: StoreDep,
    config: ConfigDep,
    name: ImageName,
    version: ImageVersion,
    build: BuildNumber,
    pq: Annotated[str | None, Query(max_length=255)] = None,
) -> HTMLResponse:
    principal = who(request, "images:read")
    ref = f"{name}@{version}/{build}"
    base = f"{request.url.scheme}://{request.url.netloc}"

    def body() -> tuple[Markup, ImageRecord]:
        image = visible(principal, catalog, ref)  # a missing or hidden image raises (nothing cached)
        facts = _image_facts(catalog, store, principal, image, pq)
        verification = evidence.verify(catalog, store, image, config.verify_key)
        inner = templates.get_template("_image_body.html")
        return Markup(inner.render({**facts, "pq": pq, "verification": verification, "base": base})), image

    # Verification with a key reads the artifacts' files: then never cached (a tampered file shows at once).
    key = ("image-page", ref, pq, principal.images, base)
    html, image = cache.get(key, body) if config.verify_key is None else body()
    context = {
        "who": principal,
        "ref": ref,
        "body": html,
        "promote_to": promotable(principal, store, image),  # per session (the token's scopes)
        "promote_url": f"/images/{name}/{version}/{build}/promote",
        "state": image.state,
        "moves": movable(principal, image),
        "state_url": f"/images/{name}/{version}/{build}/state",
    }
    return page(request, "image.html", context)


@router.get("/images/{name}/{version}/{build}/diff", response_class=HTMLResponse)
def diff_page(
    request: Request,
    catalog: CatalogDep,
    name: ImageName,
    version: ImageVersion,
    build: BuildNumber,
    against: Annotated[str, Query(max_length=300)],
) -> HTMLResponse:
    principal = who(request, "images:read")
    new = visible(principal, catalog, f"{name}@{version}/{build}")
    return page(
        request,
        "diff.html",
        {"who": principal, "d": diff(catalog, visible(principal, catalog, against), new)},
    )


@router.get("/builds", response_class=HTMLResponse)
def builds_page(request: Request, catalog: CatalogDep) -> HTMLResponse:
    principal = who(request, "builds:read")
    return page(request, "builds.html", {"who": principal, "builds": catalog.list_builds(200)})


@dataclass(frozen=True)
class Line:
    clock: str
    depth: int
    marker: str
    where: str
    text: str


def _log_context(catalog: Catalog, store: StoreDep, build: BuildRecord) -> dict[str, Any]:
    lines: list[Line] = []
    stages: list[dict[str, Any]] = []
    try:
        records, _ = read_records(log_file(store, build))
    except ApiError:
        records = []
    import json

    depth = 0
    for _, text in records[-MAX_LOG_LINES:]:
        record = json.loads(text)
        marker, message = describe(record)
        if record.get("kind") == "end":
            depth = max(0, depth - 1)
            if record.get("scope") == "stage" and isinstance(record.get("duration"), int | float):
                stages.append(record)
        lines.append(Line(clock(record), depth, marker, where(record), message))
        if record.get("kind") == "start":
            depth += 1
    image = None
    if build.image:
        try:
            image = image_url(catalog.get_image(build.image))
        except KilnError:
            image = None
    return {"build": build, "lines": lines, "stages": stages, "image_url": image}


@router.get("/builds/{build_id}", response_class=HTMLResponse)
def build_page(request: Request, catalog: CatalogDep, store: StoreDep, build_id: BuildId) -> HTMLResponse:
    principal = who(request, "builds:read")
    build = catalog.get_build(build_id)
    return page(request, "build.html", {"who": principal, **_log_context(catalog, store, build)})


@router.get("/builds/{build_id}/live", response_class=HTMLResponse)
def build_log_partial(
    request: Request, catalog: CatalogDep, store: StoreDep, build_id: BuildId
) -> HTMLResponse:
    """The log section alone (htmx swaps it in every second while the build runs)."""
    who(request, "builds:read")
    build = catalog.get_build(build_id)
    return templates.TemplateResponse(request, "_build_log.html", _log_context(catalog, store, build))


def _safe_next(target: str) -> str:
    parts = urlsplit(target)
    return target if target.startswith("/") and not target.startswith("//") and not parts.netloc else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str, Query(max_length=2000)] = "/") -> HTMLResponse:
    return page(request, "login.html", {"who": None, "next": _safe_next(next), "error": None})


@router.post("/login", response_model=None)
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    check_csrf(request, csrf)
    try:
        principal = authenticate(request.app.state.catalog, request.app.state.secret, token.strip())
    except TokenRefused as exc:
        request.state.actor = "anonymous"
        return page(request, "login.html", {"who": None, "next": _safe_next(next), "error": exc.message}, 401)
    request.state.actor = f"{principal.name} ({principal.token_id})"
    request.state.audit_target = "web session"
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_cookies(response, csrf=csrf, token=token.strip(), secure=request.app.state.config.secure_cookies)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=100)]) -> RedirectResponse:
    check_csrf(request, csrf)
    response = RedirectResponse("/login", status_code=303)
    clear_session(response)
    return response
