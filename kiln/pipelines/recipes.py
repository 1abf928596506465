"""What a pipeline needs from its recipe, isolated so the registry and parents work can plug in:
where the recipe is (a path, or a catalogued ``name@version``), which image it produces, which
catalogued images it builds on, and its text with ``--param`` overrides applied."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.models import RecipeSource
from kiln.recipes.loader import LoadedRecipe, load_recipe
from kiln.toe.document import parameter_errors

KILN_PARENT = re.compile(r"^kiln:(?P<name>[a-z0-9][a-z0-9._-]*)(@\S+)?$")
CATALOGUED = re.compile(r"^[a-z0-9][a-z0-9._-]*@[0-9x*.]+$")

CataloguedResolver = Callable[[str], RecipeSource]


def _not_wired(ref: str) -> RecipeSource:
    raise KilnError(
        f"recipe {ref!r}: catalogued recipes (name@version) are not resolvable yet",
        hint="name the recipe file by its path (relative to the pipeline file)",
    )


# The lead wires this to the registry's load_published_recipe; until then only paths are accepted.
resolve_catalogued: CataloguedResolver = _not_wired


def is_catalogued(ref: str) -> bool:
    return bool(CATALOGUED.match(ref)) and not ref.endswith((".yaml", ".yml"))


def resolve_recipe(ref: str, pipeline_file: Path) -> RecipeSource:
    """The recipe a pipeline names: a file relative to the pipeline file, or a catalogued one."""
    if is_catalogued(ref):
        return resolve_catalogued(ref)
    path = (pipeline_file.parent / ref).absolute()
    try:
        return RecipeSource.read(path)
    except OSError as exc:
        raise KilnError(f"recipe file {path}: {exc.strerror or exc}") from None
    except ValidationFailed as exc:  # missing, not a regular file, too large, not UTF-8
        raise KilnError(f"recipe file {path}: " + "; ".join(i.message for i in exc.issues)) from None


def _data(text: str) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def parent_images(text: str) -> list[str]:
    """Names of the catalogued Kiln images the recipe builds on (``parent: {image: kiln:NAME@1.x}``)."""
    parent = _data(text).get("parent")
    image = parent.get("image") if isinstance(parent, dict) else parent
    match = KILN_PARENT.match(image) if isinstance(image, str) else None
    return [match["name"]] if match else []


def image_name(text: str) -> str | None:
    name = _data(text).get("name")
    return name if isinstance(name, str) else None


def validate(source: RecipeSource) -> tuple[LoadedRecipe | None, list[Issue]]:
    """Load the recipe; its issues. Shim until image parents land in the recipe model: a ``kiln:``
    parent the current model refuses is not an issue (the build itself reports it if still refused)."""
    try:
        return load_recipe(source.path, source.text), []
    except ValidationFailed as exc:
        kiln_parent = bool(parent_images(source.text))
        issues = [i for i in exc.issues if not (kiln_parent and i.field.startswith("parent"))]
        return None, issues


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
