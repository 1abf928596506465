"""Load pipeline files (one file or a folder of them), validating each and its recipe completely:
every problem comes back at once as file:line: field: message (ValidationFailed, exit code 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.models import RecipeSource
from kiln.pipelines.model import Pipeline
from kiln.pipelines.recipes import PipelineRecipes, component_ranges, kiln_parents
from kiln.yamlsrc import SourceDocument, parse_yaml

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedPipeline:
    """A valid pipeline with its recipe: the image it produces, the Kiln images it builds on and the
    registry components it takes in a version range (``nginx@1.x``)."""

    pipeline: Pipeline
    path: Path
    recipe: RecipeSource
    image: str
    parents: tuple[str, ...]
    components: tuple[str, ...] = ()


def pipeline_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise ValidationFailed([Issue(str(target), None, None, "", "no pipeline files (*.yaml) here")])
        return files
    return [target]


def load_pipeline(path: Path, recipes: PipelineRecipes) -> LoadedPipeline:
    source = parse_yaml(path)
    if not isinstance(source.data, dict):
        raise ValidationFailed([source.issue((), "a pipeline must be a YAML mapping")])
    try:
        pipeline = Pipeline.model_validate(source.data)
    except ValidationError as exc:
        raise ValidationFailed(source.issues_from(exc)) from None
    try:
        recipe = recipes.resolve(pipeline.recipe, path.absolute())
    except KilnError as exc:
        raise ValidationFailed([source.issue(("recipe",), exc.message)]) from None
    loaded, issues = recipes.validate(recipe)
    issues = list(issues)
    if loaded is not None:
        targets = {t.name for t in loaded.recipe.distribution}
        for index, name in enumerate(pipeline.distribution):
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none"
                issues.append(
                    source.issue(
                        ("distribution", index), f"the recipe has no target {name!r} (its targets: {known})"
                    )
                )
    if pipeline.lifecycle is not None:
        issues += _lifecycle_issues(source, path.absolute().parent / pipeline.lifecycle)
    if issues or loaded is None:
        raise ValidationFailed(issues)
    model = loaded.recipe
    return LoadedPipeline(
        pipeline, path.absolute(), recipe, model.name, kiln_parents(model), component_ranges(model)
    )


def _lifecycle_issues(source: SourceDocument, policy: Path) -> list[Issue]:
    """The policy file a run applies after its build, checked now (its own issues, file:line)."""
    from kiln.lifecycle.policy import load_lifecycle_policy

    if not policy.is_file():
        return [source.issue(("lifecycle",), f"no lifecycle policy file {policy}")]
    try:
        load_lifecycle_policy(policy)
    except ValidationFailed as exc:
        return list(exc.issues)
    except KilnError as exc:
        return [source.issue(("lifecycle",), exc.message)]
    return []


def load_pipelines(target: Path, recipes: PipelineRecipes) -> list[LoadedPipeline]:
    """Every pipeline under ``target``; all files' issues at once, and no name twice."""
    loaded: list[LoadedPipeline] = []
    issues: list[Issue] = []
    for path in pipeline_files(target):
        try:
            loaded.append(load_pipeline(path, recipes))
        except ValidationFailed as exc:
            issues.extend(exc.issues)
    seen: dict[str, Path] = {}
    for item in loaded:
        if item.pipeline.name in seen:
            issues.append(
                Issue(
                    str(item.path),
                    None,
                    None,
                    "name",
                    f"pipeline {item.pipeline.name!r} is also defined in {seen[item.pipeline.name]}",
                )
            )
        seen[item.pipeline.name] = item.path
    if issues:
        raise ValidationFailed(issues)
    return loaded
