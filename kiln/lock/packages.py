"""The installed packages of a root, each with the sha256 of the .deb it was installed from."""

from __future__ import annotations

from pathlib import Path

from kiln.lock.model import LockedPackage
from kiln.rootfs.dpkg import cached_deb_sha256, installed_packages


def packages_with_hashes(root: Path, deb_cache: Path) -> list[LockedPackage]:
    """Installed packages of ``root`` (kiln.rootfs.dpkg), sorted, with their cached .deb's sha256.

    A package whose .deb is not in ``deb_cache`` (installed from a file, or the cache was pruned) is
    listed with ``sha256=None``: the lock still pins its version but cannot prove its bytes.
    """
    packages = []
    for package in installed_packages(root):
        sha256 = cached_deb_sha256(package, deb_cache)
        packages.append(
            LockedPackage(
                name=package.name,
                version=package.version,
                architecture=package.architecture,
                source=package.source,
                sha256=sha256,
                filename=package.deb_filename if sha256 else None,
            )
        )
    return packages
