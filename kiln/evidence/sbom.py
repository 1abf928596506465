"""SBOMs of an image: SPDX 2.3 JSON (spdx-tools) and CycloneDX 1.6 JSON (cyclonedx-python-lib).

Deterministic: the same inventory and image facts give the same bytes (the document namespace and
serial number derive from the image digest; the only time is the image's creation time).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kiln import __version__
from kiln.evidence.installed import Inventory
from kiln.evidence.licences import NOASSERTION
from kiln.evidence.purl import deb_purl, oci_purl, pypi_purl

KILN_NAMESPACE = uuid.UUID("5b0f6f0e-4c1c-5d1e-9a51-6b696c6e0001")


@dataclass(frozen=True)
class ParentIdentity:
    """The image an image was built on (listed as its ancestor)."""

    name: str  # org-base, or an OCI reference
    version: str  # 1.2.0/3, or "" for an OCI parent
    digest: str  # its OCI manifest digest

    @classmethod
    def from_ref(cls, ref: str, digest: str) -> ParentIdentity:
        """From ``kiln:NAME@x.y.z/n`` (a catalogued parent) or any other reference."""
        if ref.startswith("kiln:") and "@" in ref:
            name, _, version = ref.removeprefix("kiln:").partition("@")
            return cls(name, version, digest)
        return cls(ref, "", digest)


@dataclass(frozen=True)
class ImageIdentity:
    """The image an SBOM describes."""

    name: str
    version: str
    digest: str  # OCI manifest digest (sha256:…)
    created: datetime
    parent: ParentIdentity | None = None  # an image parent (not a bootstrapped distribution)


def _spdx_id(prefix: str, *parts: str) -> str:
    return "SPDXRef-" + prefix + "-" + re.sub(r"[^A-Za-z0-9.\-]+", "-", "-".join(parts)).strip("-")


def _licence_refs(expressions: list[str]) -> set[str]:
    return {m for e in expressions for m in re.findall(r"LicenseRef-[A-Za-z0-9.\-]+", e)}


def spdx_json(inv: Inventory, image: ImageIdentity) -> bytes:
    """SPDX 2.3 JSON; raises ValueError if spdx-tools finds the document invalid."""
    from license_expression import get_spdx_licensing
    from spdx_tools.spdx.model import (  # type: ignore[attr-defined]
        Actor,
        ActorType,
        Checksum,
        ChecksumAlgorithm,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        ExtractedLicensingInfo,
        Package,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    licensing = get_spdx_licensing()

    def lic(expr: str) -> Any:
        return SpdxNoAssertion() if expr == NOASSERTION else licensing.parse(expr)

    hexdigest = image.digest.partition(":")[2]
    created = image.created.replace(microsecond=0)
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{image.name}-{image.version}",
        document_namespace=f"https://kiln.invalid/spdx/{image.name}/{image.version}/{hexdigest}",
        creators=[Actor(ActorType.TOOL, f"kiln-{__version__}")],
        created=created,
    )
    root_id = _spdx_id("Image", image.name)
    root = Package(
        spdx_id=root_id,
        name=image.name,
        version=image.version,
        download_location=SpdxNoAssertion(),
        files_analyzed=False,
        checksums=[Checksum(ChecksumAlgorithm.SHA256, hexdigest)] if hexdigest else [],
        primary_package_purpose=PackagePurpose.CONTAINER,
        external_references=[
            ExternalPackageRef(
                ExternalPackageRefCategory.PACKAGE_MANAGER,
                "purl",
                oci_purl(image.name, image.digest).to_string(),
            )
        ],
        built_date=created,
        license_concluded=SpdxNoAssertion(),
        license_declared=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
    )
    packages = [root]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)]
    if image.parent is not None:
        parent = image.parent
        parent_id = _spdx_id("Parent", parent.name, parent.version)
        packages.append(
            Package(
                spdx_id=parent_id,
                name=parent.name,
                version=parent.version or None,
                download_location=SpdxNoAssertion(),
                files_analyzed=False,
                checksums=[Checksum(ChecksumAlgorithm.SHA256, parent.digest.partition(":")[2])],
                primary_package_purpose=PackagePurpose.CONTAINER,
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER,
                        "purl",
                        oci_purl(parent.name, parent.digest).to_string(),
                    )
                ],
                license_concluded=SpdxNoAssertion(),
                license_declared=SpdxNoAssertion(),
                copyright_text=SpdxNoAssertion(),
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.DESCENDANT_OF, parent_id))
    expressions: list[str] = []
    for deb in inv.debs:
        pid = _spdx_id("deb", deb.name, deb.architecture)
        expressions.append(deb.licence)
        packages.append(
            Package(
                spdx_id=pid,
                name=deb.name,
                version=deb.version,
                download_location=SpdxNoAssertion(),
                files_analyzed=False,
                supplier=Actor(ActorType.PERSON, deb.maintainer) if deb.maintainer else SpdxNoAssertion(),
                source_info=f"built from source package {deb.source} {deb.source_version}",
                summary=deb.description or None,
                comment=f"architecture {deb.architecture}"
                + (f", installed size {deb.installed_size} KiB" if deb.installed_size is not None else ""),
                license_concluded=SpdxNoAssertion(),
                license_declared=lic(deb.licence),
                copyright_text=SpdxNoAssertion(),
                primary_package_purpose=PackagePurpose.INSTALL,
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", deb_purl(deb, inv.os).to_string()
                    )
                ],
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.CONTAINS, pid))
    for dist in inv.python:
        pid = _spdx_id("pypi", dist.name, dist.version, dist.location)
        expressions.append(dist.licence)
        packages.append(
            Package(
                spdx_id=pid,
                name=dist.name,
                version=dist.version,
                download_location=SpdxNoAssertion(),
                files_analyzed=False,
                license_concluded=SpdxNoAssertion(),
                license_declared=lic(dist.licence),
                copyright_text=SpdxNoAssertion(),
                primary_package_purpose=PackagePurpose.LIBRARY,
                comment=f"found at {dist.location}",
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", pypi_purl(dist).to_string()
                    )
                ],
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.CONTAINS, pid))
    extracted = [
        ExtractedLicensingInfo(
            license_id=ref,
            extracted_text=f"Debian licence short name: {ref[11:]}",
            license_name=ref[11:],
            comment="see /usr/share/doc/*/copyright in the image",
        )
        for ref in sorted(_licence_refs(expressions))
    ]
    doc = Document(
        creation_info=info, packages=packages, relationships=relationships, extracted_licensing_info=extracted
    )
    out = io.StringIO()
    write_document_to_stream(doc, out, validate=True)
    return _canonical(out.getvalue())


def cyclonedx_json(inv: Inventory, image: ImageIdentity) -> bytes:
    """CycloneDX 1.6 JSON with the image as metadata.component and a dependency on every package."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6

    def licences(expr: str) -> list[Any]:
        if expr == NOASSERTION:
            return []
        if " " in expr or expr.startswith("LicenseRef-"):
            return [LicenseExpression(expr)]
        return [DisjunctiveLicense(id=expr)]

    hexdigest = image.digest.partition(":")[2]
    pedigree = None
    if image.parent is not None:
        parent = image.parent
        ancestor = Component(
            name=parent.name,
            version=parent.version or None,
            type=ComponentType.CONTAINER,
            bom_ref=f"image:{parent.digest}",
            purl=oci_purl(parent.name, parent.digest),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=parent.digest.partition(":")[2])],
        )
        pedigree = Pedigree(ancestors=[ancestor])
    root = Component(
        name=image.name,
        version=image.version,
        type=ComponentType.CONTAINER,
        bom_ref=f"image:{image.digest}",
        purl=oci_purl(image.name, image.digest),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)] if hexdigest else None,
        pedigree=pedigree,
    )
    components = []
    for deb in inv.debs:
        purl = deb_purl(deb, inv.os)
        props = [Property(name="kiln:deb:source", value=f"{deb.source} {deb.source_version}")]
        if deb.installed_size is not None:
            props.append(Property(name="kiln:deb:installed-size-kib", value=str(deb.installed_size)))
        components.append(
            Component(
                name=deb.name,
                version=deb.version,
                type=ComponentType.LIBRARY,
                bom_ref=purl.to_string(),
                purl=purl,
                publisher=deb.maintainer or None,
                description=deb.description or None,
                licenses=licences(deb.licence),
                properties=props,
            )
        )
    for dist in inv.python:
        purl = pypi_purl(dist)
        components.append(
            Component(
                name=dist.name,
                version=dist.version,
                type=ComponentType.LIBRARY,
                bom_ref=f"{purl.to_string()}#{dist.location}",
                purl=purl,
                licenses=licences(dist.licence),
                properties=[Property(name="kiln:location", value=dist.location)],
            )
        )
    bom = Bom(
        components=components,
        metadata=BomMetaData(component=root, timestamp=image.created.replace(microsecond=0)),
    )
    bom.serial_number = uuid.uuid5(KILN_NAMESPACE, f"cyclonedx:{image.name}:{image.version}:{image.digest}")
    bom.register_dependency(root, components)
    return _canonical(JsonV1Dot6(bom).output_as_string())


def _canonical(text: str) -> bytes:
    """Stable bytes: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def sbom_summary(inv: Inventory) -> dict[str, int]:
    return {"packages": len(inv.debs), "python": len(inv.python)}
