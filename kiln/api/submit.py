"""Build submissions: an uploaded recipe (+ component documents) or a catalogued recipe, turned into a
:class:`BuildRequest` without letting the caller name a host path (docs/security.md: API callers
choose recipes and documents, not host files)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from sqlalchemy import select

from kiln.access.tokens import Principal
from kiln.catalog import Catalog
from kiln.catalog.models import BuildRow
from kiln.errors import KilnError, NotFound
from kiln.executors.local import JobError, JobFailed
from kiln.executors.uploads import FILE_NAME
from kiln.models import BuildOptions, BuildRequest, RecipeSource
from kiln.store import Store

MAX_TEXT = 1 << 20
RecipeText = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class SubmitOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    no_cache: bool = False
    refresh_parent: bool = False
    refresh: bool = Field(
        False,
        description="bootstrap a new parent from the current archive and re-run every component "
        "that can depend on it (kiln build --refresh)",
    )
    skip_tests: bool = Field(
        False, description="build without the test phases (recorded in the provenance; kiln build --no-tests)"
    )
    test_timeout: int | None = Field(
        None, ge=1, le=86400, description="seconds the test stage may take; past it the build fails"
    )


class UploadedRecipe(BaseModel):
    """A recipe's YAML text, with the component documents it names by file name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipe: RecipeText
    components: dict[Annotated[str, StringConstraints(pattern=FILE_NAME.pattern)], RecipeText] = Field(
        default_factory=dict, max_length=100
    )
    options: SubmitOptions = SubmitOptions()


class CataloguedRecipe(BaseModel):
    """``name`` or ``name@x.y.z``: the recipe file of that recipe's latest recorded build."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipe_ref: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*(@\d+\.\d+\.\d+)?$",
                                                 max_length=300)]  # fmt: skip
    options: SubmitOptions = SubmitOptions()


BuildSubmission = UploadedRecipe | CataloguedRecipe


def _refs(section: Any) -> list[Any]:
    return section if isinstance(section, list) else []


def check_uploaded(text: str, components: dict[str, str]) -> None:
    """Refuse what would make the build read the server's files: component paths other than the
    uploaded documents, secrets (env:/file: sources) and a signing key path."""
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise KilnError(f"recipe: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        return  # the recipe loader reports it with its line
    problems = []
    if data.get("secrets"):
        problems.append("secrets: not accepted in an uploaded recipe (they read the server's files and "
                        "environment); build a catalogued recipe instead")  # fmt: skip
    if isinstance(data.get("signing"), dict) and data["signing"].get("key") is not None:
        problems.append("signing.key: an uploaded recipe cannot name a key file; the server's key signs")
    for section in ("components", "tests"):
        for index, ref in enumerate(_refs(data.get(section))):
            path = ref.get("path") if isinstance(ref, dict) else ref if isinstance(ref, str) else None
            named = isinstance(path, str) and (path.endswith((".yaml", ".yml", ".json")) or "/" in path)
            if named and path not in components:
                problems.append(f"{section}[{index}].path: {path!r} is not one of the uploaded "
                                    f"components ({', '.join(sorted(components)) or 'none'})")  # fmt: skip
    if problems:
        raise KilnError("recipe refused: " + "; ".join(problems))


def catalogued_recipe(catalog: Catalog, ref: str) -> RecipeSource:
    name, _, version = ref.partition("@")
    query = select(BuildRow.recipe_path).where(BuildRow.recipe_name == name)
    if version:
        query = query.where(BuildRow.recipe_version == version)
    with catalog.session() as s:
        path = s.scalar(query.order_by(BuildRow.started.desc()).limit(1))
    if path is None:
        raise NotFound(f"no build of a recipe {ref!r} is recorded", hint="see: kiln builds list")
    try:
        return RecipeSource.read(Path(path))
    except OSError as exc:
        raise NotFound(f"recipe file {path} of {ref!r} is gone: {exc.strerror}") from None


def build_request(submission: BuildSubmission, catalog: Catalog, store: Store, who: Principal,
                  epoch: int | None) -> BuildRequest:  # fmt: skip
    if isinstance(submission, CataloguedRecipe):
        source = catalogued_recipe(catalog, submission.recipe_ref)
    else:
        check_uploaded(submission.recipe, submission.components)
        folder = store.home / "uploads" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        for name, text in submission.components.items():
            (folder / name).write_text(text)
        (folder / "recipe.yaml").write_text(submission.recipe)
        source = RecipeSource(text=submission.recipe, path=folder / "recipe.yaml",
                              documents=dict(submission.components))  # fmt: skip
    return BuildRequest(
        recipe=source,
        data_dir=store.home,
        options=BuildOptions.model_validate(submission.options.model_dump()),
        source_date_epoch=epoch,
        requester=f"api token {who.name} ({who.token_id})",
    )


def without_folder(exc: JobFailed, folder: Path) -> JobFailed:
    """The worker's error with the server-side upload folder cut from its paths (``recipe.yaml:3``)."""
    prefix = f"{folder}/"
    return JobFailed(
        JobError(
            message=exc.message.replace(prefix, ""),
            hint=exc.hint.replace(prefix, "") if exc.hint else None,
            issues=[i.replace(prefix, "") for i in exc.issues] if exc.issues else None,
        )
    )
