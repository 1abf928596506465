"""``/components`` and ``/vulndb``: the built-in components and the vulnerability database's feeds."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from kiln.api.auth import require
from kiln.api.deps import StoreDep

router = APIRouter(tags=["registry"], dependencies=[Depends(require("images:read", public=True))])


class Feed(BaseModel):
    source: str
    location: str
    digest: str
    records: int
    vulnerabilities: int
    imported: datetime


@router.get("/components", summary="Built-in components a recipe can name")
def components() -> list[str]:
    from kiln.recipes.loader import builtin_components

    return builtin_components()


@router.get("/vulndb", summary="Feeds in the vulnerability database (empty: scans cannot run)")
def vulndb(store: StoreDep) -> list[Feed]:
    from kiln.evidence.vulndb import VulnDb

    return [
        Feed(source=s.name, location=s.location, digest=s.digest, records=s.records,
             vulnerabilities=s.vulnerabilities, imported=datetime.fromtimestamp(s.imported_at, UTC))
        for s in VulnDb.open(store).sources()
    ]  # fmt: skip
