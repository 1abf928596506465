"""What a destination publishes for an image version: its artifacts and evidence as named files,
plus a ``manifest.json`` (identity, artifacts, evidence) that is the same for every destination."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kiln.catalog.schemas import ImageRecord
from kiln.errors import KilnError
from kiln.evidence.facts import MEDIA

MANIFEST_SCHEMA = "https://kiln.dev/schemas/distribution-manifest/v1"
SUFFIX = {"compliance-arf": ".xml", "compliance-report": ".html"}


@dataclass(frozen=True)
class PublishedFile:
    """One file to publish: where it goes (relative, POSIX), where it is, what it is."""

    name: str
    source: Path
    role: str  # "artifact" or "evidence"
    kind: str
    digest: str  # sha256:...; for files inside an OCI layout, the file's own digest
    size: int
    media_type: str = "application/octet-stream"


def image_files(image: ImageRecord) -> list[PublishedFile]:
    """Every artifact (an OCI layout's files under ``oci/``) and every evidence file, in a stable order."""
    out: list[PublishedFile] = []
    for artifact in image.artifacts:
        path = Path(artifact.path)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = file.relative_to(path).as_posix()
                digest = "sha256:" + file.name if rel.startswith("blobs/sha256/") else ""
                out.append(PublishedFile(f"{artifact.kind}/{rel}", file, "artifact", artifact.kind,
                                         digest, file.stat().st_size))  # fmt: skip
        elif path.is_file():
            out.append(
                PublishedFile(path.name, path, "artifact", artifact.kind, artifact.digest, artifact.size)
            )
        else:
            raise KilnError(
                f"{image.ref}: artifact {artifact.kind} is missing at {path}",
                hint="the image's files were removed from the data directory; rebuild it",
            )
    for evidence in image.evidence:
        path = Path(evidence.path)
        if not path.is_file():
            raise KilnError(f"{image.ref}: evidence {evidence.kind} is missing at {path}")
        name = f"evidence/{evidence.kind}{SUFFIX.get(evidence.kind, '.json')}"
        out.append(PublishedFile(name, path, "evidence", evidence.kind, evidence.digest, path.stat().st_size,
                                 MEDIA.get(evidence.kind, "application/octet-stream")))  # fmt: skip
    return out


def manifest_json(image: ImageRecord, files: list[PublishedFile]) -> bytes:
    """The image's identity, artifacts and evidence (deterministic: publishing again writes the same)."""
    doc = {
        "schema": MANIFEST_SCHEMA,
        "image": {
            "ref": image.ref, "name": image.name, "version": image.version, "build": image.build,
            "digest": image.digest, "created": image.created.isoformat(), "parent": image.parent,
            "parent_digest": image.parent_digest, "recipe_digest": image.recipe_digest,
        },
        "artifacts": [
            {"kind": a.kind, "path": Path(a.path).name if Path(a.path).is_file() else a.kind,
             "digest": a.digest, "size": a.size}
            for a in image.artifacts
        ],
        "evidence": [
            {"kind": f.kind, "path": f.name, "digest": f.digest, "media_type": f.media_type}
            for f in files if f.role == "evidence"
        ],
    }  # fmt: skip
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def sha256sums(lines: list[tuple[str, str]]) -> bytes:
    """``SHA256SUMS`` (sha256sum -c format) from (hex digest, relative name) pairs."""
    return "".join(f"{digest}  {name}\n" for digest, name in sorted(lines, key=lambda x: x[1])).encode()
