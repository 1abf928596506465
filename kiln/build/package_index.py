"""What the finished root contains: installed dpkg packages (for the catalog's package index)."""

from __future__ import annotations

from pathlib import Path

from kiln.catalog import PackageRecord
from kiln.rootfs.dpkg import installed_packages


def dpkg_packages(root: Path) -> list[PackageRecord]:
    """Installed packages of ``root`` (kiln.rootfs.dpkg; empty when the root has no dpkg)."""
    return [
        PackageRecord(
            name=p.name,
            version=p.version,
            architecture=p.architecture,
            source=p.source,
            source_version=p.source_version,
        )
        for p in installed_packages(root)
    ]
