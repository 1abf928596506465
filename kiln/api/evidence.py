"""Evidence of a recorded image, as the API hands it out: stored blobs and the provenance check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.api.problems import ApiError
from kiln.api.schemas import Verification, VerificationCheck
from kiln.catalog import Catalog, ImageRecord
from kiln.evidence.facts import MEDIA
from kiln.models import Evidence, Package
from kiln.readthrough import readable_artifact, readable_blob
from kiln.store import Store


def evidence_of(image: ImageRecord, kind: str) -> Evidence:
    for item in image.evidence:
        if item.kind == kind:
            return item
    raise ApiError(404, f"{image.ref}: no {kind} evidence recorded",
                   hint="the recipe's evidence settings decide what a build records")  # fmt: skip


def blob(store: Store, image: ImageRecord, kind: str) -> tuple[bytes, str]:
    """The stored bytes of evidence ``kind`` and their media type."""
    item = evidence_of(image, kind)
    path = readable_blob(store, item.digest)
    if not path.is_file():
        raise ApiError(404, f"{image.ref}: {kind} blob {item.digest} is missing from the store")
    return path.read_bytes(), MEDIA.get(kind, "application/octet-stream")


def json_blob(store: Store, image: ImageRecord, kind: str) -> dict[str, Any]:
    data, _ = blob(store, image, kind)
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ApiError(404, f"{image.ref}: {kind} evidence is not a JSON object")
    return value


def verify(catalog: Catalog, store: Store, image: ImageRecord, key: Path | None) -> Verification:
    """``kiln verify`` for one image with the server's key (skipped when it has none)."""
    from kiln.evidence.provenancecheck import CatalogEntry, run_checks
    from kiln.evidence.signing import load_public_key

    if key is None:
        why = "the server has no verification key (kiln serve --verify-key)"
        skipped = VerificationCheck(check="signature", ok=False, skipped=True, detail=why)
        return Verification(ref=image.ref, verified=False, key=None, checks=[skipped])
    envelope, _ = blob(store, image, "provenance-signed")
    packages = [Package.model_validate(p.model_dump()) for p in catalog.packages(image.ref)]
    checks = run_checks(
        envelope,
        load_public_key(key),
        base=None,
        store=store,
        layouts=[readable_artifact(store, a) for a in image.artifacts],
        catalog=CatalogEntry(image, packages, catalog.lock(image.ref)),
    )
    results = [VerificationCheck(check=c.what, ok=c.ok, skipped=c.skipped, detail=c.detail) for c in checks]
    return Verification(ref=image.ref, verified=all(c.ok for c in checks), key=str(key), checks=results)
