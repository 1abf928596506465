"""Is an image (or a cached parent) behind the archive? Its recorded packages against the current
``Packages`` indices of its suites (kiln.rootfs.updates), and which vulnerabilities the newer
versions fix (the local vulnerability database, Debian rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kiln.errors import KilnError
from kiln.evidence.debversion import compare
from kiln.rootfs.archive import SuiteState
from kiln.rootfs.updates import Installed, Update, UpdatesReport, check_updates

if TYPE_CHECKING:
    from kiln.catalog import Catalog
    from kiln.evidence.vulndb import VulnDb
    from kiln.rootfs.debian import ParentRoot
    from kiln.store import Store


@dataclass(frozen=True)
class Fix:
    """A vulnerability an available update fixes (installed < fixed ≤ available, source versions)."""

    vuln_id: str
    source: str
    fixed: str
    severity: str


@dataclass(frozen=True)
class ImageUpdates:
    image: str
    release: str | None
    recorded: list[SuiteState]  # the archive the image's parent was bootstrapped from
    report: UpdatesReport
    fixes: dict[str, list[Fix]] = field(default_factory=dict)  # source package -> fixes

    def fixes_of(self, update: Update) -> list[Fix]:
        available = update.available_source_version
        return [f for f in self.fixes.get(update.source, []) if compare(f.fixed, available) <= 0]


def image_sources(catalog: Catalog, ref: str) -> tuple[list[str], list[SuiteState], str | None]:
    """(apt sources, recorded archive state, Debian release) of an image: from its own lock, else
    from the lock of the nearest ancestor that has them (an image built on a Kiln image)."""
    for entry in [None, *catalog.lineage(ref)]:
        image = ref if entry is None else entry.image.ref if entry.image is not None else None
        if image is None:
            break
        parent = (catalog.lock(image) or {}).get("parent") or {}
        sources = list(parent.get("sources") or [])
        if sources:
            archive = [SuiteState.model_validate(s) for s in parent.get("archive") or []]
            suite = parent.get("suite") or _suite(sources)
            return sources, archive, suite
    raise KilnError(
        f"{ref}: the image records no archive sources (its parent is not a Debian/Ubuntu release)",
        hint="outdated packages can only be checked for images bootstrapped from an archive",
    )


def _suite(sources: list[str]) -> str | None:
    from kiln.rootfs.archive import parse_sources

    found = parse_sources(sources)
    return found[0].suite if found else None


def fixes_for(db: VulnDb, release: str, updates: Iterable[Update]) -> dict[str, list[Fix]]:
    """Vulnerabilities fixed in a source package above its installed version, per source package."""
    from kiln.evidence.vulnscan import severity_of

    installed = {u.source: u.installed_source_version for u in updates}
    found: dict[str, list[Fix]] = {}
    for record in db.lookup(release, sorted(installed)):
        if record.status != "fixed" or record.fixed in (None, "0"):
            continue
        assert record.fixed is not None
        if compare(installed[record.package], record.fixed) < 0:
            fix = Fix(record.vuln_id, record.package, record.fixed, severity_of(record.urgency))
            found.setdefault(record.package, []).append(fix)
    return found


def image_updates(store: Store, catalog: Catalog, ref: str, *, timeout: float = 30.0) -> ImageUpdates:
    """Packages of image ``ref`` with newer versions in its suites, and the CVEs those fix."""
    from kiln.evidence.vulndb import VulnDb

    image = catalog.get_image(ref).ref
    sources, recorded, release = image_sources(catalog, image)
    packages = [
        Installed(p.name, p.version, p.architecture, p.source or p.name, p.source_version or p.version)
        for p in catalog.packages(image)
    ]
    arch = next((p.architecture for p in packages if p.architecture != "all"), "amd64")
    report = check_updates(
        packages, sources, store.cache, architecture=arch, recorded=recorded, timeout=timeout
    )
    fixes: dict[str, list[Fix]] = {}
    db = VulnDb.open(store)
    if release and report.updates and db.sources():
        fixes = fixes_for(db, release, report.updates)
    return ImageUpdates(image, release, recorded, report, fixes)


NOTICE_FETCH = 2_000_000  # bytes: a build's look fetches no larger index (bookworm main's is ~9 MB)


def parent_notice(parent: ParentRoot, store: Store, *, timeout: float = 5.0) -> str | None:
    """The one line a build prints when its cached parent is behind the archive, or None (up to date,
    or the archive could not be asked: a build never fails for this check). Cheap: one conditional
    request per suite; a changed suite's index is read from the cache, or fetched when small (security
    and updates suites); a large uncached one is reported as changed without counting."""
    if not parent.archive or not parent.sources:
        return None
    try:
        packages = [Installed(d["name"], d["version"], d["architecture"]) for d in parent.debs]
        arch = next((p.architecture for p in packages if p.architecture != "all"), "amd64")
        report = check_updates(packages, parent.sources, store.cache, architecture=arch,
                               recorded=parent.archive, timeout=timeout, max_fetch=NOTICE_FETCH)  # fmt: skip
    except (KilnError, OSError, ValueError, KeyError):
        return None
    made = f"parent from {datetime.fromtimestamp(min(s.date for s in parent.archive), UTC):%Y-%m-%d}"
    if report.updates:
        more = f", and {', '.join(report.unchecked)} changed" if report.unchecked else ""
        return f"{made}; archive has {report.summary()}{more}: use --refresh"
    if report.unchecked:
        return f"{made}; the archive's {', '.join(report.unchecked)} changed since: use --refresh"
    return None
