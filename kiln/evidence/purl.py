"""Package URLs (purl spec) for what Kiln finds in images."""

from __future__ import annotations

from packageurl import PackageURL

from kiln.evidence.installed import OsRelease, PythonDist
from kiln.rootfs.dpkg import DebPackage


def distro_qualifier(os: OsRelease) -> str:
    """``debian-12``, ``ubuntu-24.04`` (the purl spec's distro qualifier)."""
    return (
        f"{os.id}-{os.version_id}" if os.version_id else (f"{os.id}-{os.codename}" if os.codename else os.id)
    )


def deb_purl(pkg: DebPackage, os: OsRelease) -> PackageURL:
    """``pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12[&upstream=SRC@SRCVER]``."""
    qualifiers = {"arch": pkg.architecture, "distro": distro_qualifier(os)}
    if pkg.source != pkg.name or pkg.source_version != pkg.version:
        upstream = pkg.source if pkg.source_version == pkg.version else f"{pkg.source}@{pkg.source_version}"
        qualifiers["upstream"] = upstream
    return PackageURL(type="deb", namespace=os.id, name=pkg.name, version=pkg.version, qualifiers=qualifiers)


def pypi_purl(dist: PythonDist) -> PackageURL:
    name = dist.name.lower().replace("_", "-").replace(".", "-")
    return PackageURL(type="pypi", name=name, version=dist.version)


def oci_purl(name: str, digest: str) -> PackageURL:
    """``pkg:oci/NAME@sha256:…`` for the image itself."""
    return PackageURL(type="oci", name=name.rsplit("/", 1)[-1].lower(), version=digest)
