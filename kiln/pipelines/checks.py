"""``when: updates-available``: is there anything new to build into this pipeline's image?

A check returns a :class:`Verdict`. The default, :class:`CatalogChanges`, uses catalog data first:
no image built yet, a newer version of a Kiln parent, a changed recipe, or a registry component the
recipe takes in a range (``nginx@1.x``) now selecting another version than the image was built with;
then the archive (:class:`ArchiveUpdates`: newer packages in the suites of the newest image,
kiln.build.freshness) and any check in :data:`extra_checks`. Runs such a check starts build with
``refresh`` (:func:`wants_refresh`): a new parent from the current archive, so the new packages are in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from kiln.catalog import Catalog
from kiln.catalog.models import ImageRow
from kiln.errors import KilnError
from kiln.pipelines.components import newest_in_range
from kiln.pipelines.model import Pipeline
from kiln.pipelines.records import PipelineRecord
from kiln.registry.semver import split_ref
from kiln.store import Store


@dataclass(frozen=True)
class Verdict:
    available: bool
    reason: str


UpdatesCheck = Callable[[PipelineRecord, str], Verdict]  # (pipeline, recipe text) -> verdict

# Checks consulted after the catalog's (the archive check is registered here); the first "available" wins.
extra_checks: list[UpdatesCheck] = []


def wants_refresh(pipeline: Pipeline, trigger: str) -> bool:
    """Build with a new parent from the current archive: scheduled runs of ``when: updates-available``
    pipelines (they ran because something is new) and CVE-triggered runs (the fix is in the archive)."""
    return trigger == "cve" or (trigger == "schedule" and pipeline.when == "updates-available")


class ArchiveUpdates:
    """Newer packages in the archive suites of the pipeline's newest image (conditional fetches,
    indices cached by digest). An archive that cannot be read is not an update."""

    def __init__(self, store: Store, catalog: Catalog, *, timeout: float = 30.0) -> None:
        self.store = store
        self.catalog = catalog
        self.timeout = timeout

    def __call__(self, pipeline: PipelineRecord, recipe_text: str) -> Verdict:
        from kiln.build.freshness import image_updates

        try:
            found = image_updates(self.store, self.catalog, pipeline.image, timeout=self.timeout)
        except KilnError as exc:
            return Verdict(False, f"archive not checked: {exc.message}")
        report = found.report
        if not report.updates:
            return Verdict(False, f"no newer packages in the archive for {found.image}")
        names = ", ".join(f"{u.name} {u.installed} -> {u.available}" for u in report.updates[:5])
        more = f" and {len(report.updates) - 5} more" if len(report.updates) > 5 else ""
        return Verdict(True, f"archive: {report.summary()} since {found.image}: {names}{more}")


class CatalogChanges:
    """Parent or recipe changed since the pipeline's newest image (catalog rows); then ``archive``
    (e.g. :class:`ArchiveUpdates`) and :data:`extra_checks`."""

    def __init__(self, catalog: Catalog, archive: UpdatesCheck | None = None) -> None:
        self.catalog = catalog
        self.archive = archive

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
        checks = ([self.archive] if self.archive is not None else []) + extra_checks
        reasons = []
        for check in checks:
            verdict = check(pipeline, recipe_text)
            if verdict.available:
                return verdict
            reasons.append(verdict.reason)
        return Verdict(
            False,
            f"no updates: parent, recipe and components unchanged since {image}"
            + ("; " + "; ".join(reasons) if reasons else " (archive updates are not checked yet)"),
        )
