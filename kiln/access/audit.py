"""The audit log: one row per mutating call, written whatever its result."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import AuditRow


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    time: datetime
    actor: str
    action: str
    target: str | None
    remote: str
    status: int


def record(catalog: Catalog, *, actor: str, action: str, target: str | None, remote: str,
           status: int) -> None:  # fmt: skip
    with catalog.session(write=True) as s, s.begin():
        s.add(AuditRow(time=datetime.now(UTC), actor=actor[:255], action=action[:255], target=target,
                       remote=remote[:255], status=status))  # fmt: skip


def entries(catalog: Catalog, limit: int = 100, before: int | None = None) -> list[AuditRecord]:
    """Newest first; ``before``: only entries with a smaller id (the next page)."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditRow.id < before)
    with catalog.session() as s:
        return [
            AuditRecord(
                id=r.id,
                time=r.time,
                actor=r.actor,
                action=r.action,
                target=r.target,
                remote=r.remote,
                status=r.status,
            )
            for r in s.scalars(query)
        ]
