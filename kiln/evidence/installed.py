"""What is installed in an image root: dpkg packages, Python distributions and the OS release.

Everything is read from files inside the root (never by running the image's tools), so it works on
any root filesystem directory, foreign architectures included.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from kiln.errors import KilnError
from kiln.evidence.licences import combine, copyright_licences
from kiln.rootfs.dpkg import DebPackage, installed_packages


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str
    codename: str
    pretty_name: str


@dataclass(frozen=True)
class LicensedDeb(DebPackage):
    """An installed package with the licences its ``/usr/share/doc/NAME/copyright`` declares."""

    licences: tuple[str, ...] = ()

    @property
    def licence(self) -> str:
        return combine(list(self.licences))


@dataclass(frozen=True)
class PythonDist:
    name: str
    version: str
    licence: str
    location: str  # path of the .dist-info directory inside the image


@dataclass(frozen=True)
class Inventory:
    os: OsRelease
    debs: tuple[LicensedDeb, ...]
    python: tuple[PythonDist, ...] = field(default=())


def read_os_release(root: Path) -> OsRelease:
    """Parse ``/etc/os-release`` (or ``/usr/lib/os-release``) of the image."""
    text = None
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = _inside(root, rel)
        if path is not None and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            break
    if text is None:
        raise KilnError(f"{root}: no /etc/os-release in the image", hint="is this a Linux root filesystem?")
    values: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2).strip().strip("\"'")
    codename = values.get("VERSION_CODENAME", "")
    if not codename:  # testing/sid images have no codename in os-release
        m = re.search(r"\(([a-z]+)\)", values.get("VERSION", ""))
        codename = m.group(1) if m else ("sid" if "sid" in values.get("PRETTY_NAME", "") else "")
    return OsRelease(
        values.get("ID", "linux"), values.get("VERSION_ID", ""), codename, values.get("PRETTY_NAME", "")
    )


def _inside(root: Path, rel: str, depth: int = 0) -> Path | None:
    """``rel`` inside ``root`` with symlinks resolved against the root, never the host."""
    path = root / rel
    if not path.is_symlink():
        return path if path.exists() else None
    if depth > 8:
        return None
    target = path.readlink()
    new_rel = str(target).lstrip("/") if target.is_absolute() else str(Path(rel).parent / target)
    return _inside(root, new_rel, depth + 1)


def read_dpkg(root: Path) -> list[LicensedDeb]:
    """Installed packages (kiln.rootfs.dpkg) with their licences, sorted by (name, architecture)."""
    return [
        LicensedDeb(**asdict(p), licences=tuple(copyright_licences(root, p.name)))
        for p in installed_packages(root)
    ]


_SITE_DIRS = (
    "usr/lib/python3*/*-packages",
    "usr/local/lib/python3*/*-packages",
    "usr/lib/python3/dist-packages",
    "opt/*/lib/python3*/site-packages",
)


def read_python(root: Path) -> list[PythonDist]:
    """Python distributions (``*.dist-info``) in the image's standard site directories."""
    seen: dict[str, PythonDist] = {}
    for pattern in _SITE_DIRS:
        for site in sorted(root.glob(pattern)):
            if site.is_symlink() or not site.is_dir():
                continue
            for info in sorted(site.glob("*.dist-info")):
                meta = info / "METADATA"
                if meta.is_symlink() or not meta.is_file():
                    continue
                headers = HeaderParser().parsestr(meta.read_text(encoding="utf-8", errors="replace"))
                name, version = headers.get("Name"), headers.get("Version")
                if not name or not version:
                    continue
                lic = headers.get("License-Expression") or _classifier_licence(headers.get_all("Classifier"))
                rel = "/" + str(info.relative_to(root))
                seen.setdefault(rel, PythonDist(name, version, lic or "NOASSERTION", rel))
    return sorted(seen.values(), key=lambda d: (d.name.lower(), d.version, d.location))


def _classifier_licence(classifiers: list[str] | None) -> str | None:
    for c in classifiers or []:
        if c.startswith("License :: OSI Approved :: MIT"):
            return "MIT"
        if c.startswith("License :: OSI Approved :: Apache Software License"):
            return "Apache-2.0"
        if c.startswith("License :: OSI Approved :: BSD License"):
            return "LicenseRef-BSD"
    return None


def read_inventory(root: Path) -> Inventory:
    """Everything the SBOM and the scanner need from a root filesystem."""
    if not root.is_dir():
        raise KilnError(f"{root}: not a directory")
    return Inventory(read_os_release(root), tuple(read_dpkg(root)), tuple(read_python(root)))
