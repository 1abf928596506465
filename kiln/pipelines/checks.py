"""``when: updates-available``: is there anything new to build into this pipeline's image?

A check returns a :class:`Verdict`. The default, :class:`CatalogChanges`, uses catalog data only:
no image built yet, a newer version of a Kiln parent, a changed recipe, or a registry component the
recipe takes in a range (``nginx@1.x``) now selecting another version than the image was built with.
The archive check ("are newer Debian packages available", issue 12 §1) plugs in beside it through
:data:`extra_checks`; until it does, archive-only updates do not start a scheduled run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import ImageRow
from kiln.pipelines.components import newest_in_range
from kiln.pipelines.records import PipelineRecord
from kiln.registry.semver import split_ref


@dataclass(frozen=True)
class Verdict:
    available: bool
    reason: str


UpdatesCheck = Callable[[PipelineRecord, str], Verdict]  # (pipeline, recipe text) -> verdict

# Checks consulted after the catalog's (the archive check is registered here); the first "available" wins.
extra_checks: list[UpdatesCheck] = []


class CatalogChanges:
    """Parent or recipe changed since the pipeline's newest image, from catalog rows only."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, pipeline: PipelineRecord, recipe_text: str) -> Verdict:
        with self.catalog.session() as s:
            newest = s.scalars(
                select(ImageRow).where(ImageRow.name == pipeline.image).order_by(ImageRow.id.desc()).limit(1)
            ).first()
            if newest is None:
                return Verdict(True, f"no image {pipeline.image} built yet")
            for parent in pipeline.parents:
                digest = s.scalar(
                    select(ImageRow.digest)
                    .where(ImageRow.name == parent, ImageRow.state == "active")
                    .order_by(ImageRow.id.desc())
                    .limit(1)
                )
                if digest is not None and digest != newest.parent_digest:
                    return Verdict(True, f"parent {parent} has a new version ({digest[:19]})")
            image = f"{newest.name}@{newest.version}/{newest.build_number}"
            recipe_digest = newest.recipe_digest
            built_with = {c.name: c.version for c in newest.components}
        if recipe_digest != "sha256:" + hashlib.sha256(recipe_text.encode()).hexdigest():
            return Verdict(True, f"the recipe changed since {image}")
        for label in pipeline.components:
            name = split_ref(label)[0]
            now = newest_in_range(self.catalog, label)
            if now is not None and built_with.get(name, now) != now:
                return Verdict(
                    True, f"component {name} in {label}: {built_with[name]} -> {now} since {image}"
                )
        for check in extra_checks:
            verdict = check(pipeline, recipe_text)
            if verdict.available:
                return verdict
        return Verdict(
            False,
            f"no updates: parent, recipe and components unchanged since {image}"
            + ("" if extra_checks else " (archive updates are not checked yet)"),
        )
