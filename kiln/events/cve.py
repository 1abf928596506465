"""``cve.found`` events: after a vulnerability-database import, one event per (active image, CVE)
that affects the image now and did not before the import.

The images are matched from the catalog's package lists (the scanner's Debian rules, on source
packages), so nothing is unpacked; the Debian release comes from the root of the image's lineage
(``debian:bookworm``). Images whose root is not a Debian release are left out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import select

from kiln.catalog.models import ImageRow, PackageRow
from kiln.events.emit import emit
from kiln.events.model import Event, cve_found
from kiln.evidence.debversion import compare
from kiln.evidence.vulndb import SourceInfo, VulnDb
from kiln.evidence.vulnscan import Finding, match

if TYPE_CHECKING:
    from pathlib import Path

    from kiln.catalog import Catalog
    from kiln.monitor import Monitor
    from kiln.store import Store

AFFECTING = ("fixable", "no-fix")
Affecting = dict[tuple[str, str], Finding]
"""(image ref, vulnerability id) -> the finding."""


def debian_release(root: str) -> str | None:
    distro, _, release = root.partition(":")
    return release if distro == "debian" and release.isalpha() else None


def active_findings(catalog: Catalog, db: VulnDb) -> Affecting:
    """Every (active image, vulnerability) pair the database says affects the image."""
    if not db.sources():
        return {}
    found: Affecting = {}
    for ref, release, sources in _active_images(catalog):
        for f in match(db.lookup(release, sorted(sources)), sources):
            if f.status in AFFECTING:
                found[(ref, f.vuln_id)] = f
    return found


def _active_images(catalog: Catalog) -> list[tuple[str, str, dict[str, tuple[str, list[str]]]]]:
    with catalog.session() as s:
        images = s.scalars(select(ImageRow).where(ImageRow.state == "active")).all()
        refs = {i.id: f"{i.name}@{i.version}/{i.build_number}" for i in images}
        packages: dict[int, list[PackageRow]] = defaultdict(list)
        if images:
            for p in s.scalars(select(PackageRow).where(PackageRow.image_id.in_(list(refs)))):
                packages[p.image_id].append(p)
    out = []
    for image_id, ref in refs.items():
        release = debian_release(catalog.lineage(ref)[-1].ref)
        if release is None:
            continue
        sources: dict[str, tuple[str, list[str]]] = {}
        for p in packages[image_id]:
            source, version = p.source or p.name, p.source_version or p.version
            if source not in sources or compare(version, sources[source][0]) < 0:
                sources[source] = (version, [*sources.get(source, ("", []))[1], p.name])
            else:
                sources[source][1].append(p.name)
        out.append((ref, release, sources))
    return out


def newly_affecting(before: Affecting, after: Affecting) -> list[Event]:
    return [
        cve_found(ref, vuln, f.package, f.installed, f.fixed, f.severity, f.status)
        for (ref, vuln), f in sorted(after.items())
        if (ref, vuln) not in before
    ]


def import_with_events(
    store: Store,
    catalog: Catalog,
    location: str,
    monitor: Monitor,
    *,
    kind: str | None = None,
    fetched: Path | None = None,
) -> tuple[SourceInfo, list[Event]]:
    """Import a feed (:func:`kiln.evidence.vulnimport.import_feed`) and emit a ``cve.found`` event
    for each (active image, vulnerability) it newly shows; returns the feed and the events."""
    from kiln.evidence.vulnimport import import_feed

    db = VulnDb.open(store)
    before = active_findings(catalog, db)
    info = import_feed(store, location, monitor, kind=kind, fetched=fetched)
    events = newly_affecting(before, active_findings(catalog, db))
    if events:
        with catalog.session(write=True) as s, s.begin():
            for event in events:
                emit(s, event)
    return info, events
