"""The one reader of dpkg's database: the packages a root has installed, and their .deb file names.

What "installed" means, for the lock, the catalog's package index, the SBOM and the scanner alike:
dpkg ranks a package's current state (the third word of ``Status:``) as not-installed < config-files
< half-installed < unpacked < half-configured < triggers-awaited < triggers-pending < installed, and a
package counts as installed from ``unpacked`` up: every file of the recorded version is on disk (dpkg
requires a Version for these states). So a package whose postinst failed (half-configured) or that was
only unpacked is listed (its code is in the image: an SBOM must not hide it), and so is one with
pending triggers. Not listed: config-files (only conffiles are left), half-installed (an unpack or a
removal stopped midway: neither this version's files nor gone; dpkg may not even know the version)
and not-installed. The selection and error flag (``hold``, ``deinstall``, ``reinstreq``) do not
matter: a held package, or one selected for removal, is still on disk.

``dpkg-query -W`` lists every state but not-installed; ``tests/rootfs/test_dpkg.py`` checks this
reader against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError
from kiln.store import file_sha256

STATUS_FILE = "var/lib/dpkg/status"
STATES = (
    "not-installed",
    "config-files",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "installed",
)
INSTALLED_STATES = frozenset(STATES[STATES.index("unpacked") :])


@dataclass(frozen=True)
class DebPackage:
    """One installed package as dpkg's status file records it."""

    name: str
    version: str
    architecture: str
    source: str  # the source package's name (the binary's own name when dpkg records none)
    source_version: str  # differs from ``version`` for binNMUs and the like
    state: str  # one of INSTALLED_STATES: "installed" unless a maintainer script failed or is pending
    maintainer: str = ""
    description: str = ""  # the synopsis (first line)
    installed_size: int | None = None  # KiB, as dpkg records it

    @property
    def deb_filename(self) -> str:
        return deb_filename(self.name, self.version, self.architecture)


def deb_filename(name: str, version: str, architecture: str) -> str:
    """The name apt gives the downloaded .deb in ``/var/cache/apt/archives`` (and Kiln's package cache):
    ``NAME_VERSION_ARCH.deb``, each part quoted as apt's ``QuoteString`` does (an epoch's ``:`` becomes
    ``%3a``)."""
    return f"{_apt_quote(name, '_:')}_{_apt_quote(version, '_:')}_{_apt_quote(architecture, '_:.')}.deb"


def _apt_quote(text: str, bad: str) -> str:
    return "".join(
        "".join(f"%{b:02x}" for b in c.encode()) if c in bad or c == "%" or not " " < c < "\x7f" else c
        for c in text
    )


def cached_deb_sha256(package: DebPackage, deb_cache: Path) -> str | None:
    """sha256 of the package's .deb in ``deb_cache``; None when it is not there (installed from a file,
    the cache was pruned, or an ``apt-get clean`` in another build removed it meanwhile)."""
    try:
        return file_sha256(deb_cache / package.deb_filename)
    except FileNotFoundError:
        return None


def installed_packages(root: Path) -> list[DebPackage]:
    """The installed packages of ``root`` (see the module's docstring), sorted by (name, architecture);
    empty when the root has no dpkg status file."""
    from debian import deb822  # imported lazily: most commands never read a status file

    status = root / STATUS_FILE
    if not status.is_file():
        return []
    packages = []
    with open(status, encoding="utf-8", errors="replace") as fh:
        for para in deb822.Deb822.iter_paragraphs(fh, use_apt_pkg=False):
            if "Package" not in para:
                continue
            state = _state(status, para["Package"], para.get("Status", ""))
            if state in INSTALLED_STATES:
                packages.append(_package(status, para, state))
    return sorted(packages, key=lambda p: (p.name, p.architecture))


def _state(status: Path, name: str, field: str) -> str:
    words = field.split()
    if len(words) != 3 or words[2] not in STATES:
        raise KilnError(
            f"{status}: package {name}: Status {field!r} is not 'WANT FLAG STATE' with a dpkg state",
            hint="the image's dpkg database is damaged; dpkg itself would refuse to read it",
        )
    return words[2]


def _package(status: Path, para: Mapping[str, str], state: str) -> DebPackage:
    name = para["Package"]
    for required in ("Version", "Architecture"):
        if not para.get(required, "").strip():
            raise KilnError(f"{status}: installed package {name} has no {required} field")
    version = para["Version"].strip()
    source, _, source_version = para.get("Source", "").strip().partition(" ")
    size = para.get("Installed-Size", "").strip()
    return DebPackage(
        name=name,
        version=version,
        architecture=para["Architecture"].strip(),
        source=source or name,
        source_version=source_version.strip("() ") or version,
        state=state,
        maintainer=para.get("Maintainer", "").strip(),
        description=para.get("Description", "").split("\n", 1)[0].strip(),
        installed_size=int(size) if size.isdigit() else None,
    )
