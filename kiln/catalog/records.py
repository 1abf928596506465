"""Conversions between ORM rows and the public pydantic records."""

from __future__ import annotations

from typing import Any, cast

from kiln.catalog.models import ArtifactRow, BuildRow, ComponentRow, EvidenceRow, ImageRow, PackageRow
from kiln.catalog.schemas import (
    ArtifactRecord,
    BuildRecord,
    BuildStatus,
    ComponentRecord,
    EvidenceRecord,
    ImageRecord,
    ImageState,
    NewImage,
)


def image_ref(row: ImageRow) -> str:
    return f"{row.name}@{row.version}/{row.build_number}"


def image_record(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        name=row.name,
        version=row.version,
        build=row.build_number,
        digest=row.digest,
        created=row.created,
        parent=row.parent,
        parent_digest=row.parent_digest,
        recipe_digest=row.recipe_digest,
        description=row.description,
        size=row.size,
        state=cast(ImageState, row.state),
        build_id=row.build_id,
        components=[
            ComponentRecord(name=c.name, version=c.version, digest=c.digest, parameters=dict(c.parameters))
            for c in row.components
        ],
        artifacts=[
            ArtifactRecord(kind=a.kind, path=a.path, digest=a.digest, size=a.size) for a in row.artifacts
        ],
        evidence=[
            EvidenceRecord(kind=e.kind, path=e.path, digest=e.digest, summary=dict(e.summary))
            for e in row.evidence
        ],
    )


def build_record(row: BuildRow) -> BuildRecord:
    duration = (row.finished - row.started).total_seconds() if row.finished else None
    return BuildRecord(
        id=row.id,
        recipe_name=row.recipe_name,
        recipe_version=row.recipe_version,
        recipe_path=row.recipe_path,
        status=cast(BuildStatus, row.status),
        started=row.started,
        finished=row.finished,
        duration=duration,
        log_path=row.log_path,
        error=row.error,
        image=image_ref(row.image) if row.image is not None else None,
    )


def image_row(image: NewImage, *, build_id: str, build_number: int, **extra: Any) -> ImageRow:
    """A new image row with all its children (not yet added to a session)."""
    row = ImageRow(
        name=image.name,
        version=image.version,
        build_number=build_number,
        digest=image.digest,
        created=image.created,
        parent=image.parent,
        parent_digest=image.parent_digest,
        recipe_digest=image.recipe_digest,
        description=image.description,
        size=image.size,
        state="active",
        build_id=build_id,
        lock=image.lock,
        **extra,
    )
    row.components = [
        ComponentRow(
            position=i, name=c.name, version=c.version, digest=c.digest, parameters=dict(c.parameters)
        )
        for i, c in enumerate(image.components)
    ]
    row.artifacts = [
        ArtifactRow(position=i, kind=a.kind, path=a.path, digest=a.digest, size=a.size)
        for i, a in enumerate(image.artifacts)
    ]
    row.evidence = [
        EvidenceRow(position=i, kind=e.kind, path=e.path, digest=e.digest, summary=dict(e.summary))
        for i, e in enumerate(image.evidence)
    ]
    row.packages = [
        PackageRow(
            name=p.name,
            version=p.version,
            architecture=p.architecture,
            source=p.source or p.name,
            source_version=p.source_version or p.version,
        )
        for p in image.packages
    ]
    return row
