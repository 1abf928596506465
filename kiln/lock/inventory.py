"""The installed packages of a root, each with the sha256 of the .deb it was installed from."""

from __future__ import annotations

from pathlib import Path

from kiln.lock.model import LockedPackage
from kiln.store import file_sha256


def cache_filename(name: str, version: str, architecture: str) -> str:
    """The name apt gives a downloaded .deb in ``/var/cache/apt/archives`` (``:`` quoted as ``%3a``)."""
    return f"{name}_{version.replace(':', '%3a')}_{architecture}.deb"


def packages_with_hashes(root: Path, deb_cache: Path) -> list[LockedPackage]:
    """Installed packages of ``root`` (dpkg status), sorted, with their cached .deb's sha256 if present.

    A package whose .deb is not in ``deb_cache`` (installed from a file, or the cache was pruned) is
    listed with ``sha256=None``: the lock still pins its version but cannot prove its bytes.
    """
    from debian import deb822

    status = root / "var/lib/dpkg/status"
    if not status.is_file():
        return []
    packages = []
    with open(status, encoding="utf-8") as fh:
        for para in deb822.Packages.iter_paragraphs(fh, use_apt_pkg=False):
            if "install ok installed" not in para.get("Status", ""):
                continue
            name, version = para["Package"], para["Version"]
            arch = para.get("Architecture", "all")
            filename = cache_filename(name, version, arch)
            deb = deb_cache / filename
            found = deb.is_file()
            packages.append(
                LockedPackage(
                    name=name,
                    version=version,
                    architecture=arch,
                    source=para.get("Source", name).partition(" ")[0],
                    sha256=file_sha256(deb) if found else None,
                    filename=filename if found else None,
                )
            )
    return sorted(packages, key=lambda p: (p.name, p.architecture))
