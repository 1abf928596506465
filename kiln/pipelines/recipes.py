"""What a pipeline needs from its recipe: where the recipe is (a file relative to the pipeline file,
or a published ``name@version`` in the catalog's registry), the recipe validated with its registry
components, the Kiln images it builds on, the registry components it takes in a version range, and
its text with ``--param`` overrides applied.

:class:`PipelineRecipes` is handed to every caller (apply, the scheduler, the daemon): the catalog
it reads is explicit, never a module-level hook.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML

from kiln.catalog import Catalog
from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.models import RecipeSource
from kiln.recipes.loader import LoadedRecipe
from kiln.recipes.model import Recipe
from kiln.recipes.parentref import KilnImageSource
from kiln.registry.recipes import load_checked_recipe, load_published_recipe
from kiln.registry.semver import parse_pattern, split_ref
from kiln.toe.document import parameter_errors

CATALOGUED = re.compile(r"^[a-z0-9][a-z0-9._-]*@([0-9x.]+|latest)$")


def is_catalogued(ref: str) -> bool:
    return bool(CATALOGUED.match(ref)) and not ref.endswith((".yaml", ".yml"))


class PipelineRecipes:
    """Pipelines' recipes over one catalog: published recipes come from its registry, and registry
    component references (``nginx@1.x``) in any recipe resolve against it."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def resolve(self, ref: str, pipeline_file: Path) -> RecipeSource:
        """The recipe a pipeline names: a file relative to the pipeline file, or a published one
        (the registry's newest version matching the pattern, at each call)."""
        if is_catalogued(ref):
            try:
                return load_published_recipe(self.catalog, *split_ref(ref))
            except KilnError as exc:
                raise KilnError(f"recipe {ref!r}: {exc.message}", hint=exc.hint) from None
        path = (pipeline_file.parent / ref).absolute()
        try:
            return RecipeSource.read(path)
        except OSError as exc:
            raise KilnError(f"recipe file {path}: {exc.strerror or exc}") from None
        except ValidationFailed as exc:  # missing, not a regular file, too large, not UTF-8
            raise KilnError(f"recipe file {path}: " + "; ".join(i.message for i in exc.issues)) from None

    def validate(self, source: RecipeSource) -> tuple[LoadedRecipe | None, list[Issue]]:
        """The recipe loaded with its components (registry references resolved); else its issues."""
        try:
            return load_checked_recipe(self.catalog, source.path, source.text), []
        except ValidationFailed as exc:
            return None, list(exc.issues)


def kiln_parents(recipe: Recipe) -> tuple[str, ...]:
    """Names of the catalogued Kiln images the recipe builds on (``parent: {image: kiln:NAME@1.x}``)."""
    source = recipe.parent.source
    return (source.name,) if isinstance(source, KilnImageSource) else ()


def component_ranges(recipe: Recipe) -> tuple[str, ...]:
    """The registry components the recipe takes in a range (``nginx@1.x``, ``nginx@latest``): a new
    version published within it changes what the recipe builds. Exact versions never change."""
    ranges: list[str] = []
    for ref in (*recipe.components, *recipe.tests):
        wanted = ref.registry
        if wanted is not None and not parse_pattern(wanted[1]).exact:
            label = f"{wanted[0]}@{wanted[1]}"
            if label not in ranges:
                ranges.append(label)
    return tuple(ranges)


def with_parameters(source: RecipeSource, loaded: LoadedRecipe, overrides: Mapping[str, str]) -> RecipeSource:
    """The recipe with ``NAME=VALUE`` set on every component whose document declares ``NAME``;
    an override no component declares, or a value a component refuses, is a KilnError (exit 2)."""
    if not overrides:
        return source
    declared: dict[str, list[int]] = {}
    for component in loaded.components:
        for decl in component.document.parameters:
            declared.setdefault(decl.name, []).append(component.index)
    problems = [
        f"{name}: no component of {loaded.recipe.name} declares it "
        f"(declared: {', '.join(sorted(declared)) or 'none'})"
        for name in overrides
        if name not in declared
    ]
    for component in loaded.components:
        values = {**component.parameters, **{k: v for k, v in overrides.items() if k in declared}}
        values = {k: v for k, v in values.items() if k in {d.name for d in component.document.parameters}}
        problems += [
            message for name, message in parameter_errors(component.document, values) if name in overrides
        ]
    if problems:
        raise ValidationFailed([Issue("--param", None, None, "", p) for p in problems])
    yaml = YAML()
    data = yaml.load(source.text)
    for name, value in overrides.items():
        for index in declared[name]:
            entry = data["components"][index]
            if isinstance(entry, str):
                key = "name" if loaded.components[index].ref.name else "path"
                entry = data["components"][index] = {key: entry}
            params = entry.setdefault("parameters", {})
            if isinstance(params, list):  # Image Builder's [{name: X, value: [v]}]
                params[:] = [p for p in params if not (isinstance(p, dict) and p.get("name") == name)]
                params.append({"name": name, "value": [value]})
            else:
                params[name] = value
    out = io.StringIO()
    yaml.dump(data, out)
    return RecipeSource(text=out.getvalue(), path=source.path)
