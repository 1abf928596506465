"""Fleet questions: which image versions carry a label, are in a state, contain a package at some
version, are affected by a CVE, were built on a given parent, or are out of date (their parent
constraint now selects a newer version). Filters combine (AND).

Every filter is answered from indexed columns first (labels by (key, value), state, parent and parent
digest, packages by name and source); what SQL cannot order — Debian versions — is compared in Python
on the rows the index found, with :mod:`kiln.evidence.debversion` (each distinct version parsed once).
``--cve`` applies :func:`kiln.evidence.vulnscan.match` to the recorded package list, so an image is
affected exactly when ``kiln scan`` would list the finding (allow-listed ones included and marked, as
the scan marks them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from kiln.catalog.bulk import CHUNK, image_records
from kiln.catalog.catalog import Catalog
from kiln.catalog.labels import labels_of
from kiln.catalog.models import ImageRow, LabelRow, PackageRow
from kiln.catalog.parents import OutdatedIndex
from kiln.catalog.refs import REF
from kiln.catalog.schemas import ImageRecord, ImageState, PackageRecord, semver_key
from kiln.errors import UsageError
from kiln.evidence.debversion import compare
from kiln.evidence.settings import AllowEntry
from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnscan import Finding, FindingStatus, Severity, match

Op = Literal["<", "<=", "=", ">=", ">"]
_OPS: dict[str, Op] = {"<<": "<", "<": "<", "<=": "<=", "=": "=", "==": "=", ">=": ">=", ">>": ">", ">": ">"}
_TEST: dict[Op, Callable[[int], bool]] = {
    "<": lambda c: c < 0, "<=": lambda c: c <= 0, "=": lambda c: c == 0,
    ">=": lambda c: c >= 0, ">": lambda c: c > 0,
}  # fmt: skip
PACKAGE_SPEC = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)\s*(?:(?P<op><<|>>|<=|>=|==|<|>|=)\s*(?P<version>[A-Za-z0-9.+~:-]+))?$"
)
CVE = re.compile(r"^(?:CVE-\d{4}-\d{4,}|[A-Z][A-Z0-9]*-[A-Za-z0-9._:-]+)$")
STATES: tuple[ImageState, ...] = ("active", "deprecated", "disabled", "retired")
MAX_PARENT_DEPTH = 16
Within = Select[int] | None  # the image ids a package query is restricted to (None: all)


class PackageSpec(BaseModel):
    """``NAME`` or ``NAME<op>VERSION`` (ops ``< <= = >= >``, Debian's ``<<``/``>>`` too)."""

    model_config = ConfigDict(frozen=True)

    name: str
    op: Op | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PackageSpec:
        m = PACKAGE_SPEC.match(text.strip())
        if not m:
            raise UsageError(
                f"invalid package filter {text!r}",
                hint="write NAME or NAME<VERSION (also <=, =, >=, >), e.g. openssl<3.0.15-1~deb12u1",
            )
        op = m["op"]
        return cls(name=m["name"], op=_OPS[op] if op else None, version=m["version"])

    def accepts(self, version: str) -> bool:
        if self.op is None or self.version is None:
            return True
        return _TEST[self.op](compare(version, self.version))

    def __str__(self) -> str:
        return self.name + (f"{self.op}{self.version}" if self.op else "")


class FleetQuery(BaseModel):
    """The filters of ``kiln images list`` (all given ones must hold)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    state: ImageState | None = None
    package: PackageSpec | None = None
    cve: str | None = None
    parent: str | None = None
    outdated: bool = False  # only versions :meth:`Catalog.outdated` lists

    @property
    def detailed(self) -> bool:
        """Matches carry per-image details (matching packages or findings)."""
        return self.package is not None or self.cve is not None


class CveHit(BaseModel):
    """A finding of the queried vulnerability in one image (as ``kiln scan`` reports it)."""

    model_config = ConfigDict(frozen=True)

    vuln_id: str
    package: str
    installed: str
    fixed: str | None
    severity: Severity
    status: FindingStatus
    release: str
    allowed: AllowEntry | None = None


class FleetMatch(BaseModel):
    """One image version that answers a fleet query, with what made it match."""

    model_config = ConfigDict(frozen=True)

    image: ImageRecord
    labels: dict[str, str]
    packages: list[PackageRecord] = Field(default_factory=list)
    findings: list[CveHit] = Field(default_factory=list)


def check_cve(text: str) -> str:
    vuln = text.strip()
    if not CVE.match(vuln):
        raise UsageError(f"invalid vulnerability id {text!r}", hint="e.g. CVE-2024-12797 (or DSA-5837-1)")
    return vuln


def _parent_condition(s: Session, ref: str) -> ColumnElement[bool]:
    """``--parent``: a digest, a catalogued image (any of its versions' digests), or a literal parent
    such as ``debian:bookworm`` or an OCI reference."""
    if ref.startswith("sha256:"):
        return ImageRow.parent_digest == ref
    bare = ref.removeprefix("kiln:")
    literal = or_(ImageRow.parent == ref, ImageRow.parent == bare, ImageRow.parent == f"kiln:{bare}")
    m = REF.match(bare)
    if not m:
        return literal
    query = select(ImageRow.digest).where(ImageRow.name == m["name"])
    if m["version"]:
        query = query.where(ImageRow.version == m["version"])
    if m["build"]:
        query = query.where(ImageRow.build_number == int(m["build"]))
    digests = list(s.scalars(query))
    return or_(literal, ImageRow.parent_digest.in_(digests)) if digests else literal


def _package_hits(s: Session, spec: PackageSpec, within: Within) -> dict[int, list[Any]]:
    """Package rows (plain tuples) per image id: binary ``name`` at a matching version, or binaries
    built from source ``name`` at a matching source version (of the images ``within`` selects)."""
    columns = (PackageRow.image_id, PackageRow.name, PackageRow.version, PackageRow.architecture,
               PackageRow.source, PackageRow.source_version)  # fmt: skip
    hits: dict[int, list[Any]] = {}
    accepted: dict[str, bool] = {}  # each distinct version compared once
    query = select(*columns).where(or_(PackageRow.name == spec.name, PackageRow.source == spec.name))
    if within is not None:
        query = query.where(PackageRow.image_id.in_(within))
    for row in s.connection().execute(query).all():
        version = row.version if row.name == spec.name else row.source_version
        ok = accepted.get(version)
        if ok is None:
            ok = accepted[version] = spec.accepts(version)
        if ok:
            hits.setdefault(row.image_id, []).append(row)
    return hits


class Releases:
    """The Debian codename each image was built on: its parent ``debian:CODENAME``, or its catalogued
    parent's, followed up the lineage by digest. The lineage columns of every image are read once (a
    few milliseconds for thousands of images) instead of one query per step."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._by_digest: dict[str, tuple[str, str | None]] | None = None
        self._memo: dict[str, str | None] = {}

    def _parents(self) -> dict[str, tuple[str, str | None]]:
        if self._by_digest is None:
            rows = (
                self._s.connection()
                .execute(select(ImageRow.digest, ImageRow.parent, ImageRow.parent_digest))
                .all()
            )
            self._by_digest = {digest: (parent, up) for digest, parent, up in rows}
        return self._by_digest

    def of(self, parent: str, parent_digest: str | None) -> str | None:
        seen: list[str] = []
        release: str | None = None
        for _ in range(MAX_PARENT_DEPTH):
            if parent.startswith("debian:"):
                release = parent.removeprefix("debian:").split("/", 1)[0] or None
                break
            if not parent_digest:
                break
            if parent_digest in self._memo:
                release = self._memo[parent_digest]
                break
            seen.append(parent_digest)
            up = self._parents().get(parent_digest)
            if up is None:
                break
            parent, parent_digest = up
        for digest in seen:
            self._memo[digest] = release
        return release


def _cve_hits(s: Session, db: VulnDb, vuln_id: str, today: date, within: Within) -> dict[int, list[CveHit]]:
    records = db.records_of(vuln_id)
    by_package: dict[str, list[Any]] = {}
    for rec in records:
        by_package.setdefault(rec.package, []).append(rec)
    if not by_package:
        return {}
    # installed[image] = {source: (oldest source version, binaries)}: what the scanner sees.
    installed: dict[int, dict[str, tuple[str, list[str]]]] = {}
    query = select(PackageRow.image_id, PackageRow.name, PackageRow.source, PackageRow.source_version).where(
        PackageRow.source.in_(sorted(by_package))
    )
    if within is not None:
        query = query.where(PackageRow.image_id.in_(within))
    rows = s.connection().execute(query).all()
    for image_id, name, source, version in rows:
        sources = installed.setdefault(image_id, {})
        current = sources.get(source)
        if current is None or compare(version, current[0]) < 0:
            sources[source] = (version, [name] if current is None or current[0] != version else current[1])
        elif current[0] == version:
            current[1].append(name)
    if not installed:
        return {}
    # In chunks: one IN list of every affected image would pass PostgreSQL's limit of 65,535 bound
    # parameters once that many versions carry the package (bench/catalog.py, 100,000 versions).
    ids = sorted(installed)
    columns = (ImageRow.id, ImageRow.parent, ImageRow.parent_digest, ImageRow.lock["scan"]["allow"])
    parents = [
        row
        for start in range(0, len(ids), CHUNK)
        for row in s.connection().execute(select(*columns).where(ImageRow.id.in_(ids[start : start + CHUNK])))
    ]
    releases = Releases(s)
    per_release: dict[str, list[Any]] = {}
    hits: dict[int, list[CveHit]] = {}
    for image_id, parent, parent_digest, allow in parents:
        release = releases.of(parent, parent_digest)
        if release is None:
            continue
        if release not in per_release:
            per_release[release] = [r for recs in by_package.values() for r in recs if r.release == release]
        findings: list[Finding] = match(per_release[release], installed[image_id])
        if not findings:
            continue
        entries = _allow_entries(allow)
        hits[image_id] = [_hit(f, release, entries, today) for f in findings]
    return hits


def _allow_entries(allow: object) -> list[AllowEntry]:
    """The recorded allow-list (validated when the recipe was; an entry that no longer parses is
    left out rather than failing the query)."""
    entries = []
    for item in allow if isinstance(allow, list) else []:
        try:
            entries.append(AllowEntry.model_validate(item))
        except ValidationError:
            continue
    return entries


def _hit(f: Finding, release: str, allow: list[AllowEntry], today: date) -> CveHit:
    allowed = next(
        (a for a in allow if a.cve == f.vuln_id and a.expires >= today and a.package in (None, f.package)),
        None,
    )
    return CveHit(vuln_id=f.vuln_id, package=f.package, installed=f.installed, fixed=f.fixed,
                  severity=f.severity, status=f.status, release=release, allowed=allowed)  # fmt: skip


Keep = Callable[[str, str, int], bool]


def _matching(
    s: Session, query: FleetQuery, db: VulnDb | None, today: date | None
) -> tuple[list[int], dict[int, list[Any]] | None, dict[int, list[CveHit]] | None]:
    """Ids of the image versions answering ``query`` in catalog order, with the matching package rows
    and findings per id (None: that filter was not asked for)."""
    conditions: list[ColumnElement[bool]] = []
    if query.name is not None:
        conditions.append(ImageRow.name == query.name)
    if query.state is not None:
        conditions.append(ImageRow.state == query.state)
    if query.parent is not None:
        conditions.append(_parent_condition(s, query.parent))
    for key, value in sorted(query.labels.items()):
        labelled = select(LabelRow.image_id).where(LabelRow.key == key, LabelRow.value == value)
        conditions.append(ImageRow.id.in_(labelled))
    # The package and CVE filters read package rows: only those of the images the indexed image
    # filters leave (a label and a state narrow 100,000 versions to a few; bench/catalog.py).
    within: Within = select(ImageRow.id).where(and_(*conditions)) if conditions else None
    packages = _package_hits(s, query.package, within) if query.package is not None else None
    findings: dict[int, list[CveHit]] | None = None
    if query.cve is not None:
        if db is None:
            raise UsageError("--cve needs the vulnerability database")
        findings = _cve_hits(s, db, query.cve, today or date.today(), within)
    outdated: set[int] | None = None
    if query.outdated:
        index = OutdatedIndex(s)
        outdated = {key.id for key in index.keys if index.check(key) is not None}
    keys = select(ImageRow.id, ImageRow.name, ImageRow.version, ImageRow.build_number)
    if conditions:
        keys = keys.where(and_(*conditions))
    found = [
        k for k in s.connection().execute(keys).all()
        if (packages is None or k.id in packages) and (findings is None or k.id in findings)
        and (outdated is None or k.id in outdated)
    ]  # fmt: skip
    found.sort(key=lambda k: (k.name, semver_key(k.version), k.build_number))
    return [k.id for k in found], packages, findings


def _matches(
    s: Session, ids: list[int], packages: dict[int, list[Any]] | None,
    findings: dict[int, list[CveHit]] | None,
) -> list[FleetMatch]:  # fmt: skip
    labels = labels_of(s, set(ids))
    matches = []
    for image_id, record in zip(ids, image_records(s, ids), strict=True):
        rows = sorted((packages or {}).get(image_id, []), key=lambda p: (p.name, p.architecture))
        matched = [
            PackageRecord(name=p.name, version=p.version, architecture=p.architecture, source=p.source,
                          source_version=p.source_version)
            for p in rows
        ]  # fmt: skip
        matches.append(
            FleetMatch(image=record, labels=labels.get(image_id, {}), packages=matched,
                       findings=(findings or {}).get(image_id, []))
        )  # fmt: skip
    return matches


def find_images(
    s: Session, query: FleetQuery, db: VulnDb | None = None, today: date | None = None
) -> list[FleetMatch]:
    """The image versions answering ``query``, in catalog order (name, semantic version, build)."""
    ids, packages, findings = _matching(s, query, db, today)
    return _matches(s, ids, packages, findings)


def query_page(
    catalog: Catalog, query: FleetQuery, offset: int, limit: int, *, keep: Keep | None = None,
    db: VulnDb | None = None, today: date | None = None,
) -> tuple[list[FleetMatch], int]:  # fmt: skip
    """One page of :func:`query_catalog` (only versions ``keep(name, version, build)`` accepts) and the
    total: the filters run on indexed columns, and only the page's records are loaded."""
    with catalog.session() as s:
        ids, packages, findings = _matching(s, query, db, today)
        if keep is not None and ids:
            keys = {
                k.id: (k.name, k.version, k.build_number)
                for k in s.connection()
                .execute(select(ImageRow.id, ImageRow.name, ImageRow.version, ImageRow.build_number))
                .all()
            }
            ids = [i for i in ids if keep(*keys[i])]
        return _matches(s, ids[offset : offset + limit], packages, findings), len(ids)


def query_catalog(
    catalog: Catalog, query: FleetQuery, db: VulnDb | None = None, today: date | None = None
) -> list[FleetMatch]:
    """:func:`find_images` in one read transaction of ``catalog`` (the CLI's and the API's entry)."""
    with catalog.session() as s:
        return find_images(s, query, db, today)


def release_of(catalog: Catalog, image: ImageRecord) -> str | None:
    """The Debian codename ``image`` was built on (None: not a Debian parent, or unknown)."""
    with catalog.session() as s:
        return Releases(s).of(image.parent, image.parent_digest)
