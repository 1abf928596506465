"""in-toto Statement v1 with a SLSA Provenance v1 predicate for one image version.

Subjects: the OCI manifest digest and every artifact (with its size). The build definition names the
recipe (its content and digest), the component and test documents (digest, parameters and the kept
copy beside the artifacts), the parent and every .deb that went into the parent (sha256 as fetched by
apt) plus the apt sources; byproducts list the other evidence files (with their catalogued summaries),
the package list the catalog indexes (inline, canonical JSON) and the digest of the catalogued lock
data. ``kiln verify`` checks the catalog record against all of it.

Format v2 (``BUILD_TYPE``) added the sizes, summaries, test documents, kept copies, package list and
lock digest; v1 statements still verify, and verify reports what they do not cover.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from kiln import __version__
from kiln.evidence.facts import ComponentFact, EvidenceFile, ImageFacts
from kiln.models import Package

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
# Kiln has no public home yet: ".invalid" (RFC 2606) marks these ids as never resolvable.
BUILD_TYPE_V1 = "https://kiln.invalid/build-types/image/v1"
BUILD_TYPE = "https://kiln.invalid/build-types/image/v2"
BUILD_TYPES = (BUILD_TYPE_V1, BUILD_TYPE)
PACKAGE_LIST = "package-list"  # byproduct: the catalogued package rows
PACKAGE_LIST_MEDIA = "application/vnd.kiln.package-list+json"
PACKAGE_COLUMNS = ("name", "architecture", "version", "source", "source_version")
CATALOG_LOCK = "catalog-lock"  # byproduct: digest of the catalogued lock data
BUILDER_ID = "https://kiln.invalid/builders/local"


def _digest_map(digest: str) -> dict[str, str]:
    algo, _, value = digest.partition(":")
    return {algo or "sha256": value}


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def package_rows(packages: Iterable[Package]) -> list[list[str]]:
    """The package list as the catalog stores it (source fields default to the binary's), sorted."""
    return sorted(
        [p.name, p.architecture, p.version, p.source or p.name, p.source_version or p.version]
        for p in packages
    )


def package_list_bytes(packages: Iterable[Package]) -> bytes:
    """Canonical JSON of the package list; its sha256 is the package list digest."""
    return canonical_json({"columns": list(PACKAGE_COLUMNS), "rows": package_rows(packages)})


def _time(value: datetime) -> str:
    """RFC 3339 in UTC (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def artifact_name(path: Path, base: Path | None) -> str:
    """Subject name: the artifact's path relative to the image directory when it lies inside it."""
    if base is not None:
        try:
            return str(path.absolute().relative_to(base.absolute()))
        except ValueError:
            pass
    return str(path.absolute())


def statement(facts: ImageFacts, byproducts: list[EvidenceFile]) -> dict[str, Any]:
    subjects = [
        {
            "name": f"{facts.name}@{facts.version}",
            "digest": _digest_map(facts.digest),
            "annotations": _sized({"kind": "oci-manifest"}, facts.size),
        }
    ]
    for art in facts.artifacts:
        subjects.append(
            {
                "name": artifact_name(art.file, facts.image_dir),
                "digest": _digest_map(art.digest),
                "annotations": _sized({"kind": art.kind}, art.size),
            }
        )
    recipe_content = facts.recipe_path.read_bytes() if facts.recipe_path.is_file() else b""
    deps: list[dict[str, Any]] = [
        {
            "uri": f"file://{facts.recipe_path.absolute()}",
            "name": "recipe",
            "digest": _digest_map(facts.recipe_digest),
            "content": base64.b64encode(recipe_content).decode(),
            "mediaType": "application/yaml",
        }
    ]
    deps += [_component(c, "component") for c in facts.components]
    deps += [_component(c, "test") for c in facts.tests]
    parent: dict[str, Any] = {
        "uri": f"kiln:parent/{facts.parent}",
        "name": "parent",
        "annotations": {"cacheKey": facts.parent_key},
    }
    if facts.parent_ref:  # an image parent: named exactly, its digest is its OCI manifest's
        parent["annotations"]["image"] = facts.parent_ref
    if facts.parent_digest:
        parent["digest"] = _digest_map(facts.parent_digest)
    deps.append(parent)
    for line in facts.sources:
        deps.append({"uri": line, "name": "apt-source"})
    for deb in sorted(facts.debs, key=lambda d: (d["name"], d.get("architecture", ""))):
        purl = PackageURL(
            type="deb",
            namespace="debian",
            name=deb["name"],
            version=deb["version"],
            qualifiers={"arch": deb.get("architecture", "")} if deb.get("architecture") else None,
        )
        entry: dict[str, Any] = {"uri": purl.to_string(), "name": deb.get("filename", deb["name"])}
        if deb.get("sha256"):
            entry["digest"] = {"sha256": deb["sha256"]}
        deps.append(entry)
    external: dict[str, Any] = {
        "recipe": {"path": str(facts.recipe_path), "digest": facts.recipe_digest},
        "image": {"name": facts.name, "version": facts.version},
        "parameters": facts.parameters,
    }
    if facts.secrets:  # names only: the values never leave the build
        external["secrets"] = sorted(facts.secrets)
    if facts.tests_skipped is not None:  # the test phases did not run: say so, and who asked
        external["tests"] = {"enabled": False, "skipped": facts.tests_skipped}
    elif facts.test_timeout is not None:
        external["tests"] = {"enabled": True, "timeoutSeconds": facts.test_timeout}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"parentKey": facts.parent_key},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"kiln": __version__}},
                "metadata": {
                    "invocationId": facts.build_id,
                    "startedOn": _time(facts.started),
                    "finishedOn": _time(facts.finished),
                },
                "byproducts": [
                    {
                        "name": f.kind,
                        "digest": _digest_map(f.digest),
                        "mediaType": f.media_type,
                        "annotations": {"summary": f.summary},
                    }
                    for f in byproducts
                ]
                + _catalog_byproducts(facts),
            },
        },
    }


def _sized(annotations: dict[str, Any], size: int | None) -> dict[str, Any]:
    return annotations if size is None else {**annotations, "size": size}


def _component(comp: ComponentFact, role: str) -> dict[str, Any]:
    annotations: dict[str, Any] = {"parameters": comp.parameters, "role": role}
    if comp.document:
        annotations["document"] = comp.document
    return {
        "uri": f"kiln:{role}/{comp.name}@{comp.version}",
        "name": comp.name,
        "digest": _digest_map(comp.digest),
        "annotations": annotations,
    }


def _catalog_byproducts(facts: ImageFacts) -> list[dict[str, Any]]:
    """What the catalog indexes beside the files: the package list (inline, so verify can name the
    row that differs) and the digest of the lock data."""
    packages = package_list_bytes(facts.packages)
    return [
        {
            "name": PACKAGE_LIST,
            "digest": _digest_map(sha256_digest(packages)),
            "mediaType": PACKAGE_LIST_MEDIA,
            "content": base64.b64encode(packages).decode(),
            "annotations": {"count": len(facts.packages)},
        },
        {
            "name": CATALOG_LOCK,
            "digest": _digest_map(sha256_digest(canonical_json(facts.lock))),
            "mediaType": "application/json",
        },
    ]


def statement_bytes(facts: ImageFacts, byproducts: list[EvidenceFile]) -> bytes:
    return (json.dumps(statement(facts, byproducts), indent=2, sort_keys=True) + "\n").encode()
