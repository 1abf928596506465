"""Pick the SCAP Security Guide datastream for an image and adapt it where the content lags.

Debian's ssg-debian (0.1.65 in bookworm) ships datastreams for Debian 10 and 11 only. For Debian 12
the Debian 11 datastream is derived at run time by widening its platform check (the OVAL pattern
on /etc/debian_version, ``^11.[0-9]+$``) to accept 12, and the apt sources rules expect ``bookworm``
where they name ``bullseye``; every other rule stays as written for Debian 11.
For container targets the content's own container detection (``/.dockerenv``) is pointed at
``/etc/debian_version`` so rules with the ``machine`` platform (partitions, kernel parameters,
bootloader) are "not applicable", as they would be when scanning a running container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kiln.errors import KilnError
from kiln.evidence.installed import OsRelease

SSG_DIR = Path("/usr/share/xml/scap/ssg/content")
_PLATFORM = re.compile(r"(<ind:pattern operation=\"pattern match\">)\^11\.\[0-9\]\+\$(</ind:pattern>)")
_SUITE = re.compile(
    r"(<ind:pattern operation=\"pattern match\">\^deb\[\\s\]\+[^<]*?\[\\s\]\+)bullseye(?=[\[-])"
)
# The rule reads "System.map file (if exists) is readable only by root", but its check demands one.
_SYSTEMMAP = re.compile(
    r'(<unix:file_test check="all" check_existence=")all_exist('
    r'" [^>]*id="oval:ssg-test_permissions_systemmap_files:tst:1")'
)
_DOCKERENV = re.compile(
    r"(<unix:file_object [^>]*id=\"oval:ssg-object_installed_env_is_a_docker_container:obj:1\"[^>]*>\s*"
    r"<unix:filepath[^>]*>)/\.dockerenv(</unix:filepath>)"
)


class ContentMissing(KilnError):
    """No SCAP content for this image."""


@dataclass(frozen=True)
class Content:
    path: Path  # the datastream oscap evaluates
    source: Path  # the file shipped by ssg-debian it came from
    ssg_version: str
    adaptations: list[str] = field(default_factory=list)


def ssg_version(ds_text: str) -> str:
    m = re.search(r"<xccdf-1\.2:version[^>]*>([^<]+)</xccdf-1\.2:version>", ds_text)
    return m.group(1) if m else "unknown"


def profiles(datastream: Path) -> list[str]:
    """The XCCDF profile ids a datastream offers (``xccdf_org.ssgproject.content_profile_standard``...)."""
    text = datastream.read_text(encoding="utf-8")
    return sorted(set(re.findall(r"<xccdf-1\.2:Profile\s+id=\"([^\"]+)\"", text)))


def choose_content(os: OsRelease, target: str, work: Path, ssg_dir: Path = SSG_DIR) -> Content:
    """The datastream for ``os`` (Debian 10/11 as shipped, 12 derived from 11), adapted for ``target``."""
    if os.id != "debian" or os.version_id not in ("10", "11", "12"):
        raise ContentMissing(
            f"no SCAP content for {os.pretty_name or os.id}: ssg-debian covers Debian 10, 11 and 12 (derived)"
        )
    shipped = "11" if os.version_id == "12" else os.version_id
    source = ssg_dir / f"ssg-debian{shipped}-ds.xml"
    if not source.is_file():
        raise ContentMissing(f"{source} not found", hint="install the content: apt-get install ssg-debian")
    text = source.read_text(encoding="utf-8")
    adaptations: list[str] = []
    if os.version_id == "12":
        text, count = _PLATFORM.subn(r"\1^1[12].[0-9]+$\2", text)
        if count != 2:
            raise ContentMissing(
                f"{source}: Debian 11 platform check not found as expected ({count} matches)",
                hint="ssg-debian changed: Kiln's Debian 12 adaptation needs updating",
            )
        adaptations.append(
            "Debian 12 derived from the Debian 11 datastream: OVAL platform check on /etc/debian_version "
            "widened from ^11.[0-9]+$ to ^1[12].[0-9]+$"
        )
        text, count = _SUITE.subn(r"\1bookworm", text)
        if count:
            adaptations.append(
                f"apt sources rules expect the image's suite: bullseye -> bookworm in {count} OVAL patterns"
            )
    text, count = _SYSTEMMAP.subn(r"\1any_exist\2", text)
    if count:
        adaptations.append(
            "file_permissions_systemmap: check_existence all_exist -> any_exist, as its title says "
            "'(if exists)' (SSG 0.1.65 fails the rule on images without a kernel)"
        )
    if target == "container":
        text, count = _DOCKERENV.subn(r"\1/etc/debian_version\2", text)
        if count != 2:
            raise ContentMissing(f"{source}: container detection not found as expected ({count} matches)")
        adaptations.append(
            "container target: the content's container check (/.dockerenv) points at /etc/debian_version, "
            "so 'machine'-platform rules (partitions, kernel parameters, bootloader) are not applicable"
        )
    path = work / f"ssg-debian{os.version_id}-{target}-ds.xml"
    path.write_text(text, encoding="utf-8")
    return Content(path, source, ssg_version(text), adaptations)
