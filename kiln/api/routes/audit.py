"""``/audit``: the record of mutating calls (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kiln.access import audit
from kiln.access.audit import AuditRecord
from kiln.api.auth import Admin
from kiln.api.deps import CatalogDep

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", summary="Audit records, newest first (before: the smallest id of the previous page)")
def list_audit(
    _: Admin,
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> list[AuditRecord]:
    return audit.entries(catalog, limit, before)
