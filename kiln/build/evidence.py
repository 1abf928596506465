"""Stage: evidence on the finished image (SBOMs, vulnerability scan + gate, compliance + gate, provenance).

Runs on the merged root after every output exists, so the provenance names every artifact digest. A
failed gate fails the build: nothing is recorded (the reports stay in the blob store, named in the error).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from kiln.build.context import BuildContext
from kiln.catalog import EvidenceRecord
from kiln.evidence.collect import (
    ArtifactFact,
    ComponentFact,
    EvidenceSettings,
    ImageFacts,
    PackageFact,
    collect_evidence,
)


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
        artifacts=[ArtifactFact(a["kind"], Path(a["path"]), a["digest"], a["size"]) for a in ctx.artifacts],
        recipe_path=ctx.loaded.path,
        recipe_digest=ctx.loaded.digest,
        components=component_facts(ctx, "component"),
        parent=recipe.parent.image,
        parent_key=ctx.parent.key,
        parent_digest=ctx.layers[0].blob.result().digest,
        debs=ctx.parent.debs,
        sources=ctx.parent.sources,
        started=ctx.started,
        finished=datetime.now(UTC),
        build_id=ctx.build_id,
        image_dir=ctx.output_dir,
        secrets=ctx.secrets.names,
        tests=component_facts(ctx, "test"),
        packages=[
            PackageFact(p.name, p.version, p.architecture, p.source, p.source_version) for p in ctx.packages
        ],
        lock=ctx.lock_data,
        size=ctx.size,
    )


def signing_key(ctx: BuildContext) -> Path | None:
    """The recipe's ``signing.key`` (relative to the recipe file), else ``KILN_SIGNING_KEY``."""
    recipe = ctx.loaded.recipe
    if recipe.signing is not None:
        return ctx.loaded.path.parent / recipe.signing.key
    env = os.environ.get("KILN_SIGNING_KEY")
    return Path(env).expanduser() if env else None


def collect(ctx: BuildContext, root: Path) -> None:
    recipe = ctx.loaded.recipe
    settings = EvidenceSettings(
        sbom=True, scan=recipe.scan, compliance=recipe.compliance, signing_key=signing_key(ctx)
    )
    files = collect_evidence(root, image_facts(ctx), settings, ctx.store, ctx.monitor)
    ctx.evidence = [
        EvidenceRecord(kind=f.kind, path=str(f.path), digest=f.digest, summary=f.summary) for f in files
    ]
