"""``GET /images``: the fleet filters of ``kiln images list`` (same checks and messages), paged."""

from __future__ import annotations

from collections.abc import Callable

from kiln.api.schemas import ImageHit, Page
from kiln.catalog import Catalog
from kiln.catalog.fleet import FleetQuery, Keep, PackageSpec, check_cve, query_page
from kiln.catalog.labels import parse_assignments
from kiln.catalog.queries import debian_version
from kiln.catalog.schemas import ImageState
from kiln.errors import UsageError
from kiln.store import Store


def fleet_query(name: str | None, package: str | None, below: str | None, labels: list[str],
                state: ImageState | None, cve: str | None, parent: str | None,
                outdated: bool = False) -> FleetQuery:  # fmt: skip
    """The query the parameters describe (a bad value is a 400 naming it, as the CLI's usage error)."""
    if below is not None:
        if package is None:
            raise UsageError("below needs package", hint="e.g. ?package=openssl&below=3.0.13-1")
        spec = PackageSpec.parse(package)
        if spec.op is not None:
            raise UsageError("give the version either in package=NAME<VERSION or with below, not both")
        debian_version(below, spec.name)  # the message of the other bad versions
        package = f"{spec.name}<{below}"
    return FleetQuery(
        name=name,
        labels=parse_assignments(labels),
        state=state,
        package=PackageSpec.parse(package) if package is not None else None,
        cve=check_cve(cve) if cve is not None else None,
        parent=parent.strip() if parent is not None else None,
        outdated=outdated,
    )


def fleet_page(catalog: Catalog, store: Store, query: FleetQuery, visible: Callable[[str], bool] | None,
               start: int, limit: int) -> Page[ImageHit]:  # fmt: skip
    """One page of matches (``visible``: image names the caller may see; None: all)."""
    db = None
    if query.cve is not None:
        from kiln.evidence.vulndb import VulnDb

        db = VulnDb.open(store)
        db.require_data()
    matches, total = query_page(catalog, query, start, limit, keep=_visible(visible), db=db)
    reasons = {o.image: o.reason for o in catalog.outdated()} if query.outdated and matches else {}
    hits = [
        ImageHit(ref=m.image.ref, image=m.image, packages=m.packages, labels=m.labels, findings=m.findings,
                 outdated=reasons.get(m.image.ref))
        for m in matches
    ]  # fmt: skip
    return Page[ImageHit](items=hits, next_cursor=str(start + limit) if start + limit < total else None)


def _visible(visible: Callable[[str], bool] | None) -> Keep | None:
    if visible is None:
        return None
    return lambda name, _version, _build: visible(name)
