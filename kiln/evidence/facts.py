"""What the build knows about an image, handed to the evidence box (re-exported by collect.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from kiln.evidence.settings import ComplianceGate, ScanGate
from kiln.models import Artifact, Package
from kiln.store import Store


class ComponentFact(NamedTuple):
    name: str
    version: str
    digest: str  # sha256:… of the component document
    parameters: dict[str, Any]
    document: str = ""  # the kept copy of the document, relative to the image directory


DISK_KINDS = frozenset({"raw", "qcow2", "vmdk", "vhdx", "vpc", "disk"})


@dataclass(frozen=True)
class ImageFacts:
    name: str
    version: str  # "1.2.0/3"
    digest: str  # OCI manifest digest
    created: datetime
    artifacts: list[Artifact]
    recipe_path: Path
    recipe_digest: str
    components: list[ComponentFact]
    parent: str  # "debian:bookworm", "myimage@1.0.0/2", an OCI reference
    parent_key: str  # cache key of the parent root (bootstrapped parents)
    parent_digest: str | None  # an image parent's manifest digest (else the parent layer's blob)
    debs: list[dict[str, str]]  # ParentRoot.debs: name, version, architecture, sha256, filename
    sources: list[str]  # apt sources of the parent ("deb URL SUITE AREAS")
    started: datetime
    finished: datetime
    build_id: str = ""
    image_dir: Path | None = None  # artifacts are named relative to this in the provenance
    parameters: dict[str, Any] = field(default_factory=dict)  # recipe-level parameters, if any
    secrets: list[str] = field(default_factory=list)  # names of the build's secrets (never values)
    tests: list[ComponentFact] = field(default_factory=list)  # test-only components (kept documents)
    packages: list[Package] = field(default_factory=list)  # the package list the catalog indexes
    lock: dict[str, Any] | None = None  # the lock data recorded with the image in the catalog
    size: int | None = None  # the image size recorded in the catalog
    parent_ref: str | None = None  # an image parent's exact name (kiln:NAME@x.y.z/n, oci-layout:, docker://)
    tests_skipped: str | None = None  # the request turned the test phases off: by whom
    test_timeout: int | None = None  # the request's bound on the test stage, in seconds

    @property
    def has_disk(self) -> bool:
        return any(a.kind in DISK_KINDS for a in self.artifacts)


@dataclass(frozen=True)
class EvidenceSettings:
    sbom: bool = True
    scan: ScanGate | None = None
    compliance: ComplianceGate | None = None
    signing_key: Path | None = None


@dataclass(frozen=True)
class EvidenceFile:
    kind: str  # sbom-spdx, sbom-cyclonedx, vulnerability-report, vex, compliance-*, provenance
    path: Path  # the content-addressed blob in the store
    digest: str
    media_type: str
    summary: dict[str, Any] = field(default_factory=dict)


MEDIA = {
    "sbom-spdx": "application/spdx+json",
    "sbom-cyclonedx": "application/vnd.cyclonedx+json",
    "vulnerability-report": "application/vnd.kiln.scan+json",
    "vex": "application/openvex+json",
    "compliance-arf": "application/xml",
    "compliance-report": "text/html",
    "compliance-results": "application/vnd.kiln.compliance+json",
    "provenance": "application/vnd.in-toto+json",
    "provenance-signed": "application/vnd.dsse.envelope.v1+json",
}


def store_file(
    store: Store, work: Path, kind: str, data: bytes, summary: Mapping[str, object]
) -> EvidenceFile:
    """Write ``data`` into the store's content-addressed blobs."""
    tmp = work / kind
    tmp.write_bytes(data)
    digest, _ = store.put_blob(tmp)
    return EvidenceFile(kind, store.blob_path(digest), digest, MEDIA[kind], dict(summary))
