"""Publish, list and show recipes in the registry, and load one for a build without its file.

A published recipe is stored as written; its ``NAME@PATTERN`` component references resolve when a
build starts (as in Image Builder, ``1.x`` picks up a new 1.y.z). A recipe that uses local files
(component documents, ``file:`` secrets or a signing key relative to the recipe) is refused: it
could not be built from the registry alone. Publish those components first and reference them by
version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog import Catalog
from kiln.catalog.registry_models import PublishedRecipeRow
from kiln.errors import Issue, NotFound, ValidationFailed, display_path
from kiln.inputfile import read_input
from kiln.models import RecipeSource
from kiln.recipes.loader import LoadedRecipe, load_recipe
from kiln.registry.components import MAX_DOCUMENT_BYTES, PublishConflict, text_digest, utcnow
from kiln.registry.resolver import CatalogRegistry
from kiln.registry.schemas import PublishedRecipe, PublishOutcome, RecipeWithDocument
from kiln.registry.semver import choose, parse_pattern, parse_version
from kiln.yamlsrc import parse_yaml

VIRTUAL_DIR = Path("/kiln:recipes")
"""Where a published recipe "is" for error messages and build records (never a real folder)."""


def load_checked_recipe(catalog: Catalog, path: Path, text: str) -> LoadedRecipe:
    """Validate a recipe completely, its registry references resolved against ``catalog``."""
    with tempfile.TemporaryDirectory(prefix="kiln-registry-") as documents:
        return load_recipe(path, text, registry=CatalogRegistry(lambda: catalog, Path(documents)))


def _local_files(path: Path, text: str, loaded: LoadedRecipe) -> list[Issue]:
    """What the recipe reads from files next to it: the reasons it cannot be published."""
    source = parse_yaml(path, text)
    issues = []
    recipe = loaded.recipe
    for section, refs in (("components", recipe.components), ("tests", recipe.tests)):
        for index, ref in enumerate(refs):
            if ref.path is not None:
                issues.append(
                    source.issue(
                        (section, index),
                        f"the local component file {ref.path}: a published "
                        "recipe uses built-in and registry components only (kiln components publish "
                        f"{ref.path}, then reference it as NAME@VERSION)",
                    )
                )
    for index, secret in enumerate(recipe.secrets):
        kind, _, file = secret.source.partition(":")
        if kind == "file" and not file.startswith("/"):
            message = f"{secret.source}: a published recipe cannot read a file relative to itself"
            issues.append(source.issue(("secrets", index, "source"), message))
    if recipe.signing is not None and not recipe.signing.key.expanduser().is_absolute():
        message = "a published recipe cannot read a key file relative to itself (use an absolute path)"
        issues.append(source.issue(("signing", "key"), message))
    return issues


def publish_recipe(catalog: Catalog, path: Path, *, who: str) -> PublishOutcome:
    """Validate the recipe at ``path`` and store it as ``NAME@VERSION`` (its ``name:`` and ``version:``)."""
    text = read_input(path, limit=MAX_DOCUMENT_BYTES)
    loaded = load_checked_recipe(catalog, path, text)
    issues = _local_files(path, text, loaded)
    if issues:
        raise ValidationFailed(issues)
    recipe = loaded.recipe
    row = PublishedRecipeRow(
        name=recipe.name,
        version=recipe.version,
        digest=text_digest(text),
        document=text,
        description=recipe.description,
        state="active",
        published_by=who,
        published=utcnow(),
        components=[r.label for r in [*recipe.components, *recipe.tests]],
    )
    outcome = PublishOutcome(
        created=True, kind="recipe", name=row.name, version=row.version, digest=row.digest
    )
    with catalog.session(write=True) as s, s.begin():
        existing = _row(s, row.name, row.version)
        if existing is None:
            s.add(row)
            return outcome
        if existing.digest == row.digest:
            return outcome.model_copy(update={"created": False})
        theirs = existing.digest
    raise PublishConflict(
        f"recipe {row.name}@{row.version} ({display_path(path)}) is already published with other content "
        f"({theirs}); published versions are immutable",
        hint="change the recipe's version: and publish again",
    )


def _row(s: Session, name: str, version: str) -> PublishedRecipeRow | None:
    return s.scalar(
        select(PublishedRecipeRow).where(
            PublishedRecipeRow.name == name, PublishedRecipeRow.version == version
        )
    )


def _record(row: PublishedRecipeRow) -> PublishedRecipe:
    return PublishedRecipe(
        name=row.name,
        version=row.version,
        digest=row.digest,
        description=row.description,
        state="deprecated" if row.state == "deprecated" else "active",
        components=[str(c) for c in row.components],
        published_by=row.published_by,
        published=row.published,
        deprecated_by=row.deprecated_by,
        deprecated=row.deprecated,
        deprecation_reason=row.deprecation_reason,
    )


def list_recipes(catalog: Catalog, name: str | None = None) -> list[PublishedRecipe]:
    """Every published recipe version (of ``name``), by name then version."""
    with catalog.session() as s:
        query = select(PublishedRecipeRow)
        if name is not None:
            query = query.where(PublishedRecipeRow.name == name)
        records = [_record(r) for r in s.scalars(query).all()]
    return sorted(records, key=lambda r: (r.name, parse_version(r.version)))


def get_recipe(catalog: Catalog, name: str, pattern: str = "latest") -> RecipeWithDocument:
    """The recipe version ``NAME@PATTERN`` selects (the registry's rules), with its text."""
    versions = list_recipes(catalog, name)
    chosen = choose(versions, parse_pattern(pattern))
    if chosen is None:
        listed = ", ".join(r.version for r in versions)
        hint = f"available versions of {name}: {listed}" if versions else "see: kiln recipes list"
        raise NotFound(f"no published version of recipe {name} matches {pattern}", hint=hint)
    with catalog.session() as s:
        row = _row(s, name, chosen.version)
        assert row is not None
        return RecipeWithDocument(recipe=_record(row), document=row.document)


def load_published_recipe(catalog: Catalog, name: str, pattern: str = "latest") -> RecipeSource:
    """What ``BuildRequest.recipe`` needs to build ``NAME@PATTERN`` from the registry (no file)."""
    found = get_recipe(catalog, name, pattern)
    return RecipeSource(text=found.document, path=VIRTUAL_DIR / f"{name}@{found.recipe.version}.yaml")
