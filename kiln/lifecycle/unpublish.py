"""Take a disabled or retired image off the distribution targets it was published to.

The targets come from the image's recipe (``distribution:``) or a file given instead; each target whose
newest attempt succeeded is unpublished (:func:`kiln.distribute.run.unpublish`, recorded as a
distribution job). What cannot be removed, including targets no longer configured, is reported as an
orphan; the result goes into the state change's record, per target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kiln.catalog import Catalog, ImageRecord
from kiln.catalog import distributions as jobs
from kiln.errors import KilnError
from kiln.settings import Settings

Unpublisher = Callable[[Catalog, ImageRecord], list[dict[str, Any]]]


def published_targets(catalog: Catalog, ref: str) -> list[str]:
    """Targets whose newest attempt for ``ref`` published it."""
    return sorted(t for t, r in jobs.latest(catalog, ref).items() if r.status == "succeeded")


def unpublisher(
    *,
    settings: Settings,
    environ: Mapping[str, str],
    config: Path | None = None,
    requester: str | None = None,
) -> Unpublisher:
    """A function unpublishing an image from every target it is published to; one result per target:
    ``{"target", "result": "unpublished" | "failed", "orphans": [...]}``."""

    def run(catalog: Catalog, image: ImageRecord) -> list[dict[str, Any]]:
        from kiln.distribute.config import load_distribution
        from kiln.distribute.run import unpublish

        published = published_targets(catalog, image.ref)
        if not published:
            return []
        recipe = Path(catalog.get_build(image.build_id).recipe_path)
        try:
            loaded = load_distribution(config or recipe, recipe)
        except KilnError as exc:
            return [{"target": t, "result": "failed", "orphans": [exc.message]} for t in published]
        known = {t.name for t in loaded.targets}
        results = [
            {"target": t, "result": "failed", "orphans": [f"target {t} is no longer in {loaded.path}"]}
            for t in published
            if t not in known
        ]
        todo = [t for t in published if t in known]
        if todo:
            for outcome in unpublish(catalog, image.ref, loaded, settings=settings, environ=environ,
                                     only=todo, requester=requester):  # fmt: skip
                orphans = list(outcome.external.get("orphans", [])) if outcome.result == "failed" else []
                results.append({"target": outcome.target, "result": outcome.result, "orphans": orphans})
        return sorted(results, key=lambda r: str(r["target"]))

    return run
