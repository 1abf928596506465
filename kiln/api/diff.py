"""What changed between two image versions: packages added, removed and changed; components."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kiln.catalog import Catalog, ImageRecord, PackageRecord


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
    def keyed(image: ImageRecord) -> dict[tuple[str, str], PackageRecord]:
        return {(p.name, p.architecture): p for p in catalog.packages(image.ref)}

    before, after = keyed(old), keyed(new)
    changed = [
        PackageChange(name=k[0], architecture=k[1], old=before[k].version, new=after[k].version)
        for k in sorted(before.keys() & after.keys())
        if before[k].version != after[k].version
    ]
    return ImageDiff(
        old=old.ref,
        new=new.ref,
        added=[after[k] for k in sorted(after.keys() - before.keys())],
        removed=[before[k] for k in sorted(before.keys() - after.keys())],
        changed=changed,
        components_old=[f"{c.name} {c.version}" for c in old.components],
        components_new=[f"{c.name} {c.version}" for c in new.components],
    )
