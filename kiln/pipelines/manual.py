"""A manual run of a pipeline, queued for the daemon: ``kiln pipelines run`` and the API's
``POST /pipelines/{name}/runs`` (same checks, same messages)."""

from __future__ import annotations

from collections.abc import Mapping

from kiln.errors import UsageError, ValidationFailed
from kiln.pipelines.clock import system_clock
from kiln.pipelines.recipes import PipelineRecipes, with_parameters
from kiln.pipelines.records import RunRecord
from kiln.pipelines.store import PipelineStore


def queue_manual_run(store: PipelineStore, name: str, overrides: Mapping[str, str], *, by: str) -> RunRecord:
    """Queue a run of ``name`` with component parameter ``overrides`` (validated against its recipe);
    ``by`` says who asked (the run's cause starts with it)."""
    p = store.get(name)
    if "manual" not in p.pipeline.triggers:
        raise UsageError(
            f"pipeline {name} does not allow manual runs (its triggers: {', '.join(p.pipeline.triggers)})"
        )
    if overrides:
        recipes = PipelineRecipes(store.catalog)
        source = recipes.resolve(p.pipeline.recipe, p.source_path)
        loaded, issues = recipes.validate(source)
        if loaded is None:
            raise ValidationFailed(issues)
        with_parameters(source, loaded, overrides)  # validates the overrides
    cause = by + "".join(f" --param {k}={v}" for k, v in overrides.items())
    now = system_clock()
    run = store.enqueue(name, "manual", cause, f"manual:{now.isoformat()}", now, params=dict(overrides))
    assert run is not None
    return run
