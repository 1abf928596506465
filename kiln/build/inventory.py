"""What the finished root contains: installed dpkg packages (for the catalog's package index)."""

from __future__ import annotations

from pathlib import Path

from kiln.catalog import PackageRecord


def dpkg_packages(root: Path) -> list[PackageRecord]:
    """Installed packages from ``var/lib/dpkg/status`` (empty when the root has no dpkg)."""
    from debian import deb822

    status = root / "var/lib/dpkg/status"
    if not status.is_file():
        return []
    records = []
    with open(status, encoding="utf-8") as fh:
        for para in deb822.Packages.iter_paragraphs(fh, use_apt_pkg=False):
            if "install ok installed" not in para.get("Status", ""):
                continue
            source = para.get("Source", para["Package"])
            source_name, _, rest = source.partition(" ")
            source_version = rest.strip("() ") or para["Version"]
            records.append(
                PackageRecord(
                    name=para["Package"],
                    version=para["Version"],
                    architecture=para.get("Architecture", ""),
                    source=source_name,
                    source_version=source_version,
                )
            )
    return sorted(records, key=lambda r: r.name)
