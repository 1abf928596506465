"""What a recipe's ``parent.image`` names: a distribution release, a catalogued Kiln image with a
version constraint, or an OCI image (a local layout or a registry image pinned by digest).

    debian:bookworm                         bootstrapped from packages (mmdebstrap)
    kiln:org-base@1.x                       newest active 1.*.* build of org-base in the catalog
    kiln:org-base@1.2.x | @1.2.0 | @1.2.0/3 | @latest | @sha256:<hex> | @CHANNEL
    oci-layout:PATH[:TAG]                   an OCI image layout (PATH relative to the recipe file)
    docker://HOST/REPO:TAG@sha256:<hex>     a registry image, fetched with skopeo (digest required)

Parsing is pure (no catalog, no files): the recipe model validates with it, the build resolves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

DISTRIBUTION = re.compile(r"^(?P<distribution>debian|ubuntu):(?P<suite>[a-z]+)$")
IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHANNEL = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_WILDCARD = re.compile(r"^(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?\.x$")
_EXACT = re.compile(r"^(?P<version>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))(?:/(?P<build>[1-9]\d*))?$")
_DOCKER = re.compile(
    r"^docker://(?P<name>[^@\s]+?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?@(?P<digest>\S+)$"
)

ConstraintKind = Literal["latest", "wildcard", "exact", "build", "digest", "channel"]
FORMS = (
    "debian:SUITE, ubuntu:SUITE, kiln:NAME@1.x|1.2.x|1.2.0|1.2.0/3|latest|sha256:…|CHANNEL, "
    "oci-layout:PATH[:TAG] or docker://HOST/REPO:TAG@sha256:…"
)


@dataclass(frozen=True)
class VersionConstraint:
    """Which versions of an image a child accepts (Image Builder's wildcard rules, plus digests and
    promotion channels)."""

    kind: ConstraintKind
    text: str

    @classmethod
    def parse(cls, text: str) -> VersionConstraint:
        if text == "latest":
            return cls("latest", text)
        if _WILDCARD.match(text):
            return cls("wildcard", text)
        exact = _EXACT.match(text)
        if exact:
            return cls("build" if exact["build"] else "exact", text)
        if DIGEST.match(text):
            return cls("digest", text)
        if text == "x" or "." in text or "/" in text or ":" in text or not CHANNEL.match(text):
            raise ValueError(
                f"invalid version constraint {text!r}: expected 1.x, 1.2.x, 1.2.0, 1.2.0/3, latest, "
                "sha256:<64 hex digits> or a promotion channel name"
            )
        return cls("channel", text)

    def matches(self, version: str, build: int, digest: str) -> bool:
        """Does the image version ``version/build`` with ``digest`` satisfy this constraint? (A
        channel is not decided by the version: the catalog resolves it.)"""
        if self.kind == "latest":
            return True
        if self.kind == "digest":
            return digest == self.text
        if self.kind == "exact":
            return version == self.text
        if self.kind == "build":
            return f"{version}/{build}" == self.text
        if self.kind == "wildcard":
            fixed = self.text.removesuffix(".x").split(".")
            return version.split(".")[: len(fixed)] == fixed
        return False


@dataclass(frozen=True)
class DistributionSource:
    distribution: str
    suite: str


@dataclass(frozen=True)
class KilnImageSource:
    name: str
    constraint: VersionConstraint

    def __str__(self) -> str:
        return f"kiln:{self.name}@{self.constraint.text}"


@dataclass(frozen=True)
class OciLayoutSource:
    path: str
    tag: str | None


@dataclass(frozen=True)
class RegistrySource:
    name: str  # HOST/REPO
    tag: str | None
    digest: str

    @property
    def pinned(self) -> str:
        """The skopeo reference by digest (the tag is informative only)."""
        return f"docker://{self.name}@{self.digest}"


ParentSource = DistributionSource | KilnImageSource | OciLayoutSource | RegistrySource


def parse_parent(text: str) -> ParentSource:
    """The parent a recipe names; ValueError with the accepted forms when ``text`` is none of them."""
    match = DISTRIBUTION.match(text)
    if match:
        return DistributionSource(match["distribution"], match["suite"])
    if text.startswith("kiln:"):
        name, at, constraint = text.removeprefix("kiln:").partition("@")
        if not IMAGE_NAME.match(name):
            raise ValueError(f"invalid image name {name!r} in parent {text!r}")
        return KilnImageSource(name, VersionConstraint.parse(constraint if at else "latest"))
    if text.startswith("oci-layout:"):
        rest = text.removeprefix("oci-layout:")
        path, colon, tag = rest.rpartition(":")
        if not colon or "/" in tag:  # no tag, or the last ':' belongs to the path
            path, tag = rest, ""
        if not path:
            raise ValueError(f"parent {text!r} names no layout directory")
        return OciLayoutSource(path, tag or None)
    if text.startswith("docker://"):
        docker = _DOCKER.match(text)
        if not docker:
            raise ValueError(
                f"parent {text!r}: a registry parent is pinned by digest: docker://HOST/REPO:TAG@sha256:…"
            )
        if not DIGEST.match(docker["digest"]):
            raise ValueError(f"parent {text!r}: invalid digest {docker['digest']!r} (sha256:<64 hex digits>)")
        return RegistrySource(docker["name"], docker["tag"], docker["digest"])
    raise ValueError(f"unsupported parent '{text}': expected {FORMS}")
