"""Images as parents: resolve ``kiln:NAME@CONSTRAINT`` to one recorded version, and tell which
children are out of date (their parent has a newer active version their constraint accepts).

Both answers come from key columns only (no artifacts, evidence or packages are loaded), so the
whole catalog is read in one query even for ``kiln images list --outdated``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog.models import ImageRow, PromotionRow
from kiln.catalog.schemas import semver_key
from kiln.errors import KilnError
from kiln.recipes.parentref import KilnImageSource, VersionConstraint, parse_parent

USABLE = ("active", "deprecated")  # disabled and retired images are no parents


class ParentUnavailable(KilnError):
    """A recipe's parent image cannot be used: unknown, no matching version, or not usable. Nothing was
    built (the build is not even recorded): invalid input, exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class ImageKey:
    """The columns of an image row that parent resolution needs."""

    id: int
    name: str
    version: str
    build: int
    digest: str
    state: str
    parent: str
    parent_digest: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}/{self.build}"

    @property
    def order(self) -> tuple[tuple[int, ...], int]:
        return semver_key(self.version), self.build


class Outdated(BaseModel):
    """Why an image is out of date: its parent constraint now selects a newer version, or its parent
    is out of date itself (``via``)."""

    model_config = ConfigDict(frozen=True)

    image: str
    parent: str  # the constraint as the recipe wrote it, e.g. kiln:org-base@1.x
    built_from: str | None  # the parent version the image was built on
    newer: str | None  # the version the constraint selects now (None when ``via`` is set)
    via: str | None = None  # an out-of-date ancestor (the nearest)
    reason: str


def image_keys(s: Session, name: str | None = None) -> list[ImageKey]:
    columns = (ImageRow.id, ImageRow.name, ImageRow.version, ImageRow.build_number, ImageRow.digest,
               ImageRow.state, ImageRow.parent, ImageRow.parent_digest)  # fmt: skip
    query = select(*columns)
    if name is not None:
        query = query.where(ImageRow.name == name)
    keys = [ImageKey(*row) for row in s.execute(query)]
    return sorted(keys, key=lambda k: (k.name, k.order))


def channel_image(s: Session, name: str, channel: str) -> int | None:
    """The image id a promotion channel points at (its newest allowed move)."""
    return s.scalar(
        select(PromotionRow.image_id)
        .where(PromotionRow.image_name == name, PromotionRow.channel == channel, PromotionRow.allowed)
        .order_by(PromotionRow.id.desc())
        .limit(1)
    )


def _versions(keys: Iterable[ImageKey]) -> str:
    listed = [f"{k.version}/{k.build} ({k.state})" if k.state != "active" else f"{k.version}/{k.build}"
              for k in keys]  # fmt: skip
    return ", ".join(listed[-20:]) or "none"


def candidates(s: Session, source: KilnImageSource, keys: list[ImageKey]) -> list[ImageKey]:
    """Versions of the image the constraint accepts, oldest first."""
    constraint = source.constraint
    if constraint.kind == "channel":
        target = channel_image(s, source.name, constraint.text)
        return [k for k in keys if k.id == target]
    return [k for k in keys if constraint.matches(k.version, k.build, k.digest)]


def select_parent(s: Session, source: KilnImageSource) -> ImageKey:
    """The one version a child of ``source`` is built on: the newest usable (active or deprecated)
    version the constraint accepts. Raises :class:`ParentUnavailable` naming the recorded versions."""
    keys = image_keys(s, source.name)
    if not keys:
        names = s.scalars(select(ImageRow.name).distinct().order_by(ImageRow.name)).all()
        listed = ", ".join(names[:50]) if names else "none (build one first: kiln build RECIPE)"
        raise ParentUnavailable(f"parent {source}: no image {source.name} in the catalog",
                                hint=f"recorded images: {listed}")  # fmt: skip
    matching = candidates(s, source, keys)
    if not matching:
        what = (f"channel {source.constraint.text} of {source.name} points at no image"
                if source.constraint.kind == "channel"
                else f"no version of {source.name} matches {source.constraint.text}")  # fmt: skip
        raise ParentUnavailable(f"parent {source}: {what}",
                                hint=f"recorded versions of {source.name}: {_versions(keys)}")  # fmt: skip
    usable = [k for k in matching if k.state in USABLE]
    if not usable:
        newest = matching[-1]
        raise ParentUnavailable(
            f"parent {source}: {newest.ref} is {newest.state} and cannot be used as a parent"
            + (f" (nor can the other {len(matching) - 1} matching versions)" if len(matching) > 1 else ""),
            hint=f"recorded versions of {source.name}: {_versions(keys)}; "
            "build a new version of the parent or pin an active one",
        )
    return max(usable, key=lambda k: k.order)


def built_from(keys_by_name: dict[str, list[ImageKey]], child: ImageKey) -> ImageKey | None:
    """The recorded image a child was built on (by the parent digest it recorded)."""
    if not child.parent_digest:
        return None
    source = _kiln_source(child.parent)
    if source is None:
        return None
    same = [
        k for k in keys_by_name.get(source.name, []) if k.digest == child.parent_digest and k.id != child.id
    ]
    return max(same, key=lambda k: k.order) if same else None


def _kiln_source(parent: str) -> KilnImageSource | None:
    try:
        source = parse_parent(parent)
    except ValueError:
        return None
    return source if isinstance(source, KilnImageSource) else None


class OutdatedIndex:
    """Out-of-date answers for a whole catalog, from one read of its key columns."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.keys = image_keys(s)
        self.by_name: dict[str, list[ImageKey]] = {}
        for key in self.keys:
            self.by_name.setdefault(key.name, []).append(key)
        self._memo: dict[int, Outdated | None] = {}

    def _newest_active(self, source: KilnImageSource) -> ImageKey | None:
        constraint: VersionConstraint = source.constraint
        if constraint.kind == "digest":
            return None  # pinned by content: never out of date
        matching = candidates(self.s, source, self.by_name.get(source.name, []))
        active = [k for k in matching if k.state == "active"]
        return max(active, key=lambda k: k.order) if active else None

    def check(self, key: ImageKey, _depth: int = 0) -> Outdated | None:
        if key.id in self._memo:
            return self._memo[key.id]
        self._memo[key.id] = None  # a cycle (impossible in a sane catalog) ends here
        result = self._check(key, _depth)
        self._memo[key.id] = result
        return result

    def _check(self, key: ImageKey, depth: int) -> Outdated | None:
        source = _kiln_source(key.parent)
        if source is None or depth > 64:
            return None
        parent = built_from(self.by_name, key)
        newest = self._newest_active(source)
        moved = source.constraint.kind == "channel" and parent is not None and newest is not None
        if moved and newest is not None and parent is not None and newest.id != parent.id:
            return Outdated(
                image=key.ref, parent=key.parent, built_from=parent.ref, newer=newest.ref,
                reason=f"channel {source.constraint.text} of {source.name} now points at "
                f"{newest.version}/{newest.build}, built from {parent.version}/{parent.build}",
            )  # fmt: skip
        if not moved and newest is not None and (parent is None or newest.order > parent.order):
            was = f"{parent.version}/{parent.build}" if parent else "an unrecorded version"
            return Outdated(
                image=key.ref, parent=key.parent, built_from=parent.ref if parent else None,
                newer=newest.ref,
                reason=f"parent {key.parent} has {newest.version}/{newest.build}, built from {was}",
            )  # fmt: skip
        if parent is not None:
            upstream = self.check(parent, depth + 1)
            if upstream is not None:
                return Outdated(image=key.ref, parent=key.parent, built_from=parent.ref, newer=None,
                                via=upstream.via or upstream.image,
                                reason=f"parent {parent.ref} is outdated: {upstream.reason}")  # fmt: skip
        return None

    def all(self) -> list[Outdated]:
        """Every out-of-date image, in catalog order."""
        return [found for key in self.keys if (found := self.check(key)) is not None]

    def of(self, name: str, version: str, build: int) -> Outdated | None:
        for key in self.by_name.get(name, []):
            if key.version == version and key.build == build:
                return self.check(key)
        return None
