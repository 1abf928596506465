"""Questions asked of the catalog beyond single records: packages across images, image lineage."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from debian.debian_support import Version
from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.base import ExecutableOption

from kiln.catalog.models import ImageRow, PackageRow
from kiln.catalog.records import image_record, image_ref
from kiln.catalog.refs import REF, ImageRef
from kiln.catalog.schemas import ImageRecord, PackageRecord, semver_key
from kiln.errors import KilnError


class PackageMatch(BaseModel):
    """An image and the packages in it that answered a package query."""

    model_config = ConfigDict(frozen=True)

    image: ImageRecord
    packages: list[PackageRecord]


class LineageEntry(BaseModel):
    """One step up an image's ancestry: a recorded image, or the external root it started from."""

    model_config = ConfigDict(frozen=True)

    ref: str
    image: ImageRecord | None


def image_options() -> Sequence[ExecutableOption]:
    return (
        selectinload(ImageRow.components),
        selectinload(ImageRow.artifacts),
        selectinload(ImageRow.evidence),
    )


def debian_version(text: str, what: str) -> Version:
    try:
        return Version(text)
    except ValueError:
        raise KilnError(
            f"invalid Debian version {text!r} for {what}",
            hint="a Debian version looks like [epoch:]upstream[-revision], e.g. 3.0.11-1~deb12u2",
        ) from None


def packageimage_record(row: PackageRow) -> PackageRecord:
    return PackageRecord(
        name=row.name,
        version=row.version,
        architecture=row.architecture,
        source=row.source,
        source_version=row.source_version,
    )


def packages_of(s: Session, image_id: int) -> list[PackageRecord]:
    rows = s.scalars(
        select(PackageRow)
        .where(PackageRow.image_id == image_id)
        .order_by(PackageRow.name, PackageRow.architecture)
    ).all()
    return [packageimage_record(r) for r in rows]


def images_with_package(s: Session, name: str, version_below: str | None = None) -> list[PackageMatch]:
    """Images containing binary or source package ``name``, optionally only at a version lower than
    ``version_below`` (Debian ordering: epochs, ``~``, revisions). A source-package match compares the
    source version, so ``openssl < 3.0.13-1~deb12u1`` finds libssl3 built from an older openssl."""
    below = debian_version(version_below, name) if version_below is not None else None
    rows = s.scalars(select(PackageRow).where(or_(PackageRow.name == name, PackageRow.source == name))).all()
    hits: dict[int, list[PackageRow]] = {}
    for row in rows:
        if below is not None:
            version = row.version if row.name == name else row.source_version
            if debian_version(version, row.name) >= below:
                continue
        hits.setdefault(row.image_id, []).append(row)
    if not hits:
        return []
    images = s.scalars(select(ImageRow).options(*image_options()).where(ImageRow.id.in_(hits))).all()
    ordered = sorted(images, key=lambda r: (r.name, semver_key(r.version), r.build_number))
    return [
        PackageMatch(
            image=image_record(r),
            packages=[
                packageimage_record(p) for p in sorted(hits[r.id], key=lambda p: (p.name, p.architecture))
            ],
        )
        for r in ordered
    ]


NameFilter = Callable[[str], bool]


def _ordered(
    s: Session, ids: Collection[int] | None, name: str | None, visible: NameFilter | None = None
) -> list[int]:
    """Image ids in catalog order (name, semantic version, build number), from key columns only
    (filtered here: an IN list of thousands of ids costs more than reading every key)."""
    query = select(ImageRow.id, ImageRow.name, ImageRow.version, ImageRow.build_number)
    if name is not None:
        query = query.where(ImageRow.name == name)
    keys = [
        k for k in s.execute(query) if (ids is None or k.id in ids) and (visible is None or visible(k.name))
    ]
    return [k.id for k in sorted(keys, key=lambda k: (k.name, semver_key(k.version), k.build_number))]


def _records(s: Session, ids: list[int]) -> list[ImageRow]:
    rows = {
        r.id: r for r in s.scalars(select(ImageRow).options(*image_options()).where(ImageRow.id.in_(ids)))
    }
    return [rows[i] for i in ids]


def images_page(
    s: Session, name: str | None, offset: int, limit: int, visible: NameFilter | None = None
) -> tuple[list[ImageRecord], int]:
    """One page of :meth:`Catalog.list_images` (only names ``visible`` accepts) and the total; only
    the page's images are loaded."""
    ids = _ordered(s, None, name, visible)
    return [image_record(r) for r in _records(s, ids[offset : offset + limit])], len(ids)


def images_with_package_page(
    s: Session,
    name: str,
    version_below: str | None,
    offset: int,
    limit: int,
    visible: NameFilter | None = None,
) -> tuple[list[PackageMatch], int]:
    """One page of :func:`images_with_package` and the total: the package rows are read as plain
    tuples, and only the page's images are loaded whole."""
    below = debian_version(version_below, name) if version_below is not None else None
    columns = (PackageRow.image_id, PackageRow.name, PackageRow.version, PackageRow.architecture,
               PackageRow.source, PackageRow.source_version)  # fmt: skip
    hits: dict[int, list[Any]] = {}  # package rows as plain tuples
    for row in s.execute(select(*columns).where(or_(PackageRow.name == name, PackageRow.source == name))):
        if below is not None:
            version = row.version if row.name == name else row.source_version
            if debian_version(version, row.name) >= below:
                continue
        hits.setdefault(row.image_id, []).append(row)
    if not hits:
        return [], 0
    ids = _ordered(s, hits, None, visible)
    page = []
    for image in _records(s, ids[offset : offset + limit]):
        rows = sorted(hits[image.id], key=lambda p: (p.name, p.architecture))
        packages = [
            PackageRecord(name=p.name, version=p.version, architecture=p.architecture, source=p.source,
                          source_version=p.source_version)
            for p in rows
        ]  # fmt: skip
        page.append(PackageMatch(image=image_record(image), packages=packages))
    return page, len(ids)


def parent_name(row: ImageRow) -> str | None:
    """The image name ``row``'s parent reference names (None: an external parent)."""
    if row.parent.startswith("kiln:"):
        return row.parent.removeprefix("kiln:").partition("@")[0]
    return ImageRef.parse(row.parent).name if REF.match(row.parent) else None


def choose_parent(row: ImageRow, rows: Iterable[ImageRow]) -> ImageRow | None:
    """The rule of :func:`resolve_parent` applied to ``rows`` (any superset of the versions of the
    parent's name), so that many children can be resolved against one batch of rows."""
    if row.parent.startswith("kiln:"):
        name = parent_name(row)
        found = [c for c in rows if c.name == name and c.digest == row.parent_digest and c.id != row.id]
        return max(found, key=lambda c: (semver_key(c.version), c.build_number)) if found else None
    if not REF.match(row.parent):
        return None
    ref = ImageRef.parse(row.parent)
    candidates = [
        c for c in rows
        if c.name == ref.name and c.id != row.id and ref.version in (None, "", c.version)
        and (ref.build is None or c.build_number == ref.build)
    ]  # fmt: skip
    if ref.build is None and row.parent_digest:
        by_digest = [c for c in candidates if c.digest == row.parent_digest]
        candidates = by_digest or candidates
    candidates = [c for c in candidates if c.recorded <= row.recorded] or candidates
    if not candidates:
        return None
    return max(candidates, key=lambda c: (semver_key(c.version), c.build_number))


def resolve_parent(s: Session, row: ImageRow) -> ImageRow | None:
    """The recorded image ``row`` was built on, or None when its parent is external (a distribution
    release, an OCI image) or no longer recorded. ``name@x.y.z/n`` is exact; a looser reference is
    resolved by the parent digest, falling back to the latest matching build. ``kiln:NAME@CONSTRAINT``
    (a recipe's image parent) is resolved by the parent digest the build recorded."""
    name = parent_name(row)
    if name is None:
        return None
    # No eager loading: of the candidates only the chosen one becomes a record (its children load then).
    query = select(ImageRow).where(ImageRow.name == name)
    if row.parent.startswith("kiln:"):
        query = query.where(ImageRow.digest == row.parent_digest)
    else:
        ref = ImageRef.parse(row.parent)
        if ref.version:
            query = query.where(ImageRow.version == ref.version)
        if ref.build is not None:
            query = query.where(ImageRow.build_number == ref.build)
    return choose_parent(row, s.scalars(query).all())


def lineage(s: Session, row: ImageRow) -> list[LineageEntry]:
    """Ancestors of ``row``, nearest first, ending with the external root (e.g. ``debian:bookworm``)."""
    entries: list[LineageEntry] = []
    seen = {row.id}
    current = row
    while True:
        parent = resolve_parent(s, current)
        if parent is None or parent.id in seen:
            entries.append(LineageEntry(ref=current.parent, image=None))
            return entries
        entries.append(LineageEntry(ref=image_ref(parent), image=image_record(parent)))
        seen.add(parent.id)
        current = parent


def children(s: Session, row: ImageRow) -> list[ImageRecord]:
    """Recorded images built directly on ``row``."""
    candidates = s.scalars(
        select(ImageRow)
        .options(*image_options())
        .where(
            or_(
                ImageRow.parent == row.name,
                ImageRow.parent.startswith(f"{row.name}@"),
                ImageRow.parent_digest == row.digest,
            )
        )
    ).all()
    found = [c for c in candidates if (p := resolve_parent(s, c)) is not None and p.id == row.id]
    return [
        image_record(c) for c in sorted(found, key=lambda r: (r.name, semver_key(r.version), r.build_number))
    ]
