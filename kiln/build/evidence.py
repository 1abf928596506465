"""Stages: evidence on the finished image. SBOMs, vulnerability scan + gate and compliance + gate run on
the merged root after every output exists; the provenance (naming every artifact and evidence digest)
is made and signed last, after the tests passed. A failed gate fails the build: nothing is recorded
(the reports stay in the blob store, named in the error).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kiln.build import preflight
from kiln.build.context import BuildContext
from kiln.evidence.collect import (
    ComponentFact,
    EvidenceSettings,
    ImageFacts,
    provenance_evidence,
    root_evidence,
)
from kiln.models import Evidence


def kept_documents(ctx: BuildContext, role: str) -> list[str]:
    """Where keep_documents put each component's (or test's) document, relative to the image dir."""
    entries = (ctx.lock_data or {}).get("components", [])
    return [str(e["document"]) for e in entries if e.get("role") == role]


def component_facts(ctx: BuildContext, role: str) -> list[ComponentFact]:
    items = ctx.loaded.components if role == "component" else ctx.loaded.tests
    kept = kept_documents(ctx, role)
    return [
        ComponentFact(c.label, c.version, c.document.digest, c.parameters, kept[i] if i < len(kept) else "")
        for i, c in enumerate(items)
    ]


def image_facts(ctx: BuildContext) -> ImageFacts:
    recipe = ctx.loaded.recipe
    assert ctx.parent is not None and ctx.manifest_digest is not None
    return ImageFacts(
        name=recipe.name,
        version=recipe.version,
        digest=ctx.manifest_digest,
        created=datetime.fromtimestamp(ctx.epoch, UTC),
        artifacts=list(ctx.artifacts),
        recipe_path=ctx.loaded.path,
        recipe_digest=ctx.loaded.digest,
        components=component_facts(ctx, "component"),
        parent=recipe.parent.image,
        parent_key=ctx.parent.key,
        parent_digest=ctx.image_parent.digest if ctx.image_parent else ctx.layers[0].blob.result().digest,
        parent_ref=ctx.image_parent.name if ctx.image_parent else None,
        debs=ctx.parent.debs,
        sources=ctx.parent.sources,
        started=ctx.started,
        finished=datetime.now(UTC),
        build_id=ctx.build_id,
        image_dir=ctx.output_dir,
        secrets=ctx.secrets.names,
        tests=component_facts(ctx, "test"),
        packages=list(ctx.packages),
        lock=ctx.lock_data,
        size=ctx.size,
        tests_skipped=ctx.tests_skipped,
        test_timeout=ctx.options.test_timeout,
    )


def signing_key(ctx: BuildContext) -> Path | None:
    """``KILN_SIGNING_KEY``, else the recipe's ``signing.key`` (:func:`kiln.build.preflight.signing_key`)."""
    return preflight.signing_key(ctx.loaded, ctx.settings)


def evidence_settings(ctx: BuildContext) -> EvidenceSettings:
    recipe = ctx.loaded.recipe
    return EvidenceSettings(
        sbom=True, scan=recipe.scan, compliance=recipe.compliance, signing_key=signing_key(ctx)
    )


def collect(ctx: BuildContext, root: Path) -> None:
    """SBOMs, scan and compliance from the merged root (gates fail the build here)."""
    ctx.evidence_files = root_evidence(root, image_facts(ctx), evidence_settings(ctx), ctx.store, ctx.monitor)


def sign(ctx: BuildContext) -> None:
    """The provenance over everything the build made, signed when a key is configured."""
    made = ctx.evidence_files
    signed = provenance_evidence(image_facts(ctx), made, evidence_settings(ctx), ctx.store, ctx.monitor)
    ctx.evidence = [
        Evidence(kind=f.kind, path=str(f.path), digest=f.digest, summary=f.summary) for f in [*made, signed]
    ]
