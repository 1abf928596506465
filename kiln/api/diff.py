"""What changed between two image versions: packages added, removed and changed; components."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kiln.catalog import Catalog, ImageRecord, PackageRecord
from kiln.diffing.images import package_diff


class PackageChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    architecture: str
    old: str
    new: str


class ImageDiff(BaseModel):
    """``new`` compared with ``old``."""

    model_config = ConfigDict(frozen=True)

    old: str
    new: str
    added: list[PackageRecord]
    removed: list[PackageRecord]
    changed: list[PackageChange]
    components_old: list[str]
    components_new: list[str]


def diff(catalog: Catalog, old: ImageRecord, new: ImageRecord) -> ImageDiff:
    """The API's summary of :func:`kiln.diffing.images.package_diff` (the library ``kiln diff`` uses;
    its full answer, :func:`kiln.diffing.images.diff_images`, is what a richer endpoint would return)."""
    packages = package_diff(catalog.packages(old.ref), catalog.packages(new.ref))
    changed = sorted([*packages.upgraded, *packages.downgraded], key=lambda c: (c.name, c.architecture))
    return ImageDiff(
        old=old.ref,
        new=new.ref,
        added=packages.added,
        removed=packages.removed,
        changed=[
            PackageChange(name=c.name, architecture=c.architecture, old=c.old, new=c.new) for c in changed
        ],
        components_old=[f"{c.name} {c.version}" for c in old.components],
        components_new=[f"{c.name} {c.version}" for c in new.components],
    )
