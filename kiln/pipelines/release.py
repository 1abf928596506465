"""What a pipeline run does around its build (issue 13 §1).

Before the build starts: the distribution preflight of the pipeline's ``distribution`` targets, so a
20-minute build does not end in "access denied" (a failure fails the run; no build starts).
After the build succeeded: the image is published to those targets as recorded distribution jobs,
exactly as ``kiln distribute`` does (a failed target fails the run, keeps the image, and is retried
with ``kiln distribute REF --retry-failed``), then the pipeline's ``lifecycle`` policy (a file,
relative to the pipeline file) is applied to the versions of the pipeline's image name only. The
lifecycle step is left out when distribution failed: older versions may be all that is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from kiln.catalog import Catalog
from kiln.catalog import distributions as jobs
from kiln.distribute import run as distribution
from kiln.distribute.config import DistributionConfig, load_distribution
from kiln.errors import KilnError
from kiln.models import RecipeSource
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.records import PipelineRecord, RunStatus
from kiln.recipes.loader import LoadedRecipe
from kiln.recipes.model import DiskOutput
from kiln.settings import Settings
from kiln.store import Store


@dataclass(frozen=True)
class Released:
    """How the steps after a successful build ended: the run's status and the note recorded on it."""

    status: RunStatus
    note: str | None


def _config(source: RecipeSource, loaded: LoadedRecipe) -> DistributionConfig:
    """The recipe's targets as validated (a catalogued recipe has no file to read them from again)."""
    disks = [o for o in loaded.recipe.outputs if isinstance(o, DiskOutput)]
    boot = str(disks[0].boot) if disks else None
    return DistributionConfig(source.path.absolute(), list(loaded.recipe.distribution), boot)


class Release:
    """Preflight before a pipeline's build, distribution and lifecycle after it."""

    def __init__(
        self, store: Store, catalog: Catalog, settings: Settings, environ: Mapping[str, str]
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.environ = environ

    def preflight(
        self, pipeline: PipelineRecord, source: RecipeSource, recipes: PipelineRecipes
    ) -> list[str]:
        """Check the pipeline's targets for the image its recipe will make; raises a KilnError naming
        every problem. Returns the targets checked (none: the pipeline distributes nowhere)."""
        names = pipeline.pipeline.distribution
        if not names:
            return []
        loaded, issues = recipes.validate(source)
        if loaded is None:
            raise KilnError("the recipe is invalid: " + "; ".join(str(i) for i in issues))
        return distribution.preflight_planned(
            _config(source, loaded), name=loaded.recipe.name, version=loaded.recipe.version,
            settings=self.settings, environ=self.environ, only=names,
        )  # fmt: skip

    def after(self, pipeline: PipelineRecord, run_id: str, build_id: str, now: datetime) -> Released:
        """Distribute the build's image and apply the lifecycle policy; never raises a KilnError (a
        failure becomes the run's ``failed`` status and reason)."""
        spec = pipeline.pipeline
        if not spec.distribution and spec.lifecycle is None:
            return Released("succeeded", None)
        build = self.catalog.get_build(build_id)
        if build.image is None:
            return Released("succeeded", None)
        notes: list[str] = []
        if spec.distribution:
            ok, said = self._distribute(pipeline, run_id, build.image, Path(build.recipe_path))
            notes += said
            if not ok:
                # a failed attempt is recorded per target; a refused preflight records none
                recorded = any(j.status == "failed" for j in jobs.latest(self.catalog, build.image).values())
                retry = f"kiln distribute {build.image}" + (" --retry-failed" if recorded else "")
                notes.append(f"the image {build.image} is kept; retry with: {retry}")
                if spec.lifecycle is not None:
                    notes.append("lifecycle policy not applied (distribution failed)")
                return Released("failed", "distribution failed: " + "; ".join(notes))
        if spec.lifecycle is not None:
            try:
                notes.append(self._lifecycle(pipeline, now))
            except KilnError as exc:
                return Released(
                    "failed", "; ".join([*notes, f"lifecycle policy {spec.lifecycle}: {exc.message}"])
                )
        return Released("succeeded", "; ".join(notes))

    def _distribute(
        self, pipeline: PipelineRecord, run_id: str, ref: str, recipe: Path
    ) -> tuple[bool, list[str]]:
        try:
            config = load_distribution(recipe, recipe)
            outcomes = distribution.distribute(
                self.catalog, ref, config, settings=self.settings, environ=self.environ,
                only=pipeline.pipeline.distribution, requester=f"pipeline {pipeline.name} run {run_id}",
            )  # fmt: skip
        except (KilnError, OSError) as exc:
            return False, [exc.message if isinstance(exc, KilnError) else str(exc)]
        said = [f"{o.target} ({o.kind}) {o.result}" + (f": {o.error}" if o.error else "") for o in outcomes]
        return all(o.result != "failed" for o in outcomes), ["distributed " + ", ".join(said)]

    def _lifecycle(self, pipeline: PipelineRecord, now: datetime) -> str:
        from kiln.lifecycle.plan import apply, plan
        from kiln.lifecycle.policy import load_lifecycle_policy
        from kiln.lifecycle.unpublish import unpublisher

        assert pipeline.pipeline.lifecycle is not None
        path = (pipeline.source_path.parent / pipeline.pipeline.lifecycle).absolute()
        planned = plan(self.catalog, load_lifecycle_policy(path), now=now)
        mine = [c for c in planned.changes if c.image.partition("@")[0] == pipeline.image]
        actor = f"pipeline {pipeline.name}"
        unpublish = unpublisher(settings=self.settings, environ=self.environ, requester=actor)
        done = apply(
            self.store, self.catalog, replace(planned, changes=mine), actor=actor, unpublish=unpublish
        )
        refused = [d for d in done if d.error]
        moved = [
            f"{d.change.image} {d.change.from_state} -> {d.change.to_state}" for d in done if not d.error
        ]
        if refused:
            raise KilnError(", ".join(f"{d.change.image}: {d.error}" for d in refused))
        return f"lifecycle policy {pipeline.pipeline.lifecycle}: " + (", ".join(moved) or "nothing to change")
