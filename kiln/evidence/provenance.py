"""in-toto Statement v1 with a SLSA Provenance v1 predicate for one image version.

Subjects: the OCI manifest digest and every artifact. The build definition names the recipe (its
content and digest), the component documents, the parent and every .deb that went into the parent
(sha256 as fetched by apt) plus the apt sources; byproducts list the other evidence files.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from kiln import __version__
from kiln.evidence.facts import EvidenceFile, ImageFacts

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
# Kiln has no public home yet: ".invalid" (RFC 2606) marks these ids as never resolvable.
BUILD_TYPE = "https://kiln.invalid/build-types/image/v1"
BUILDER_ID = "https://kiln.invalid/builders/local"


def _digest_map(digest: str) -> dict[str, str]:
    algo, _, value = digest.partition(":")
    return {algo or "sha256": value}


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
            "annotations": {"kind": "oci-manifest"},
        }
    ]
    for art in facts.artifacts:
        subjects.append(
            {
                "name": artifact_name(art.path, facts.image_dir),
                "digest": _digest_map(art.digest),
                "annotations": {"kind": art.kind},
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
    for comp in facts.components:
        deps.append(
            {
                "uri": f"kiln:component/{comp.name}@{comp.version}",
                "name": comp.name,
                "digest": _digest_map(comp.digest),
                "annotations": {"parameters": comp.parameters},
            }
        )
    parent: dict[str, Any] = {
        "uri": f"kiln:parent/{facts.parent}",
        "name": "parent",
        "annotations": {"cacheKey": facts.parent_key},
    }
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
                    {"name": f.kind, "digest": _digest_map(f.digest), "mediaType": f.media_type}
                    for f in byproducts
                ],
            },
        },
    }


def statement_bytes(facts: ImageFacts, byproducts: list[EvidenceFile]) -> bytes:
    return (json.dumps(statement(facts, byproducts), indent=2, sort_keys=True) + "\n").encode()
