"""Distribution jobs in the catalog: one row per attempt to publish an image version to one target.

The newest row of an (image, target) pair is that target's state; older rows are its history.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from kiln.catalog.catalog import Catalog
from kiln.catalog.models import DistributionRow, ImageRow
from kiln.catalog.refs import ImageRef
from kiln.errors import KilnError, NotFound

DistributionStatus = Literal["running", "succeeded", "failed", "unpublished"]


class DistributionRecord(BaseModel):
    """One publication attempt (its JSON field names are a stable contract, like the other records)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    image: str
    target: str
    kind: str
    config_digest: str
    status: DistributionStatus
    external: dict[str, Any]
    started: datetime
    finished: datetime | None
    duration: float | None
    error: str | None
    requester: str | None


def _record(row: DistributionRow, image: str) -> DistributionRecord:
    duration = (row.finished - row.started).total_seconds() if row.finished else None
    return DistributionRecord(
        id=row.id, image=image, target=row.target, kind=row.kind, config_digest=row.config_digest,
        status=cast(DistributionStatus, row.status), external=dict(row.external), started=row.started,
        finished=row.finished, duration=duration, error=row.error, requester=row.requester,
    )  # fmt: skip


def _image_id(catalog: Catalog, ref: str) -> tuple[int, str]:
    image = catalog.get_image(ref)
    with catalog.session() as s:
        image_id = s.scalar(
            select(ImageRow.id).where(
                ImageRow.name == image.name,
                ImageRow.version == image.version,
                ImageRow.build_number == image.build,
            )
        )
    if image_id is None:
        raise NotFound(f"no image {ImageRef.parse(ref)}")
    return image_id, image.ref


def start(
    catalog: Catalog, ref: str, *, target: str, kind: str, config_digest: str, requester: str | None
) -> str:
    """Record a running attempt; returns its id."""
    image_id, _ = _image_id(catalog, ref)
    job = uuid.uuid4().hex
    with catalog.session(write=True) as s, s.begin():
        s.add(
            DistributionRow(
                id=job, image_id=image_id, target=target, kind=kind, config_digest=config_digest,
                status="running", external={}, started=datetime.now(UTC), requester=requester,
            )
        )  # fmt: skip
    return job


def finish(
    catalog: Catalog,
    job: str,
    *,
    status: DistributionStatus,
    external: dict[str, Any],
    error: str | None = None,
) -> None:
    with catalog.session(write=True) as s, s.begin():
        row = s.get(DistributionRow, job)
        if row is None:
            raise KilnError(f"no distribution job {job}")
        row.status = status
        row.external = external
        row.error = error
        row.finished = datetime.now(UTC)


def history(catalog: Catalog, ref: str) -> list[DistributionRecord]:
    """Every attempt for the image, oldest first."""
    image_id, image = _image_id(catalog, ref)
    with catalog.session() as s:
        rows = s.scalars(
            select(DistributionRow)
            .where(DistributionRow.image_id == image_id)
            .order_by(DistributionRow.started, DistributionRow.id)
        ).all()
        return [_record(r, image) for r in rows]


def latest(catalog: Catalog, ref: str) -> dict[str, DistributionRecord]:
    """Each target's newest attempt for the image."""
    out: dict[str, DistributionRecord] = {}
    for record in history(catalog, ref):
        out[record.target] = record
    return out
