"""Load a recipe and everything it names, validating all of it before any disk work.

Every problem (recipe fields, missing or invalid component documents, bad parameters) is collected
and raised at once as :class:`~kiln.errors.ValidationFailed` (exit code 2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from kiln.errors import Issue, KilnError, ValidationFailed, display_path
from kiln.recipes.model import ComponentRef, Recipe
from kiln.toe.document import Document, check_parameters
from kiln.toe.guest_steps import guest_step_problems
from kiln.toe.nesting import load_checked
from kiln.yamlsrc import SourceDocument, parse_yaml

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "components"


@dataclass(frozen=True)
class RegistryDocument:
    """A registry reference resolved to one exact version, its document saved as a local file."""

    name: str
    version: str
    digest: str
    path: Path
    deprecation_reason: str | None = None


class ComponentRegistry(Protocol):
    """Where ``NAME@PATTERN`` references are resolved (``kiln.registry.resolver`` over the catalog)."""

    def fetch(self, name: str, pattern: str) -> RegistryDocument:
        """The version the pattern selects; a KilnError (listing what exists) when there is none."""
        ...


@dataclass(frozen=True)
class ResolvedComponent:
    """A recipe component with its loaded document and parameter values."""

    index: int
    ref: ComponentRef
    document: Document
    parameters: dict[str, str]  # as recorded: a secret parameter holds its secret's name only
    secret_parameters: dict[str, str] = field(default_factory=dict)  # parameter -> secret name
    registry_version: str | None = None  # the exact version a NAME@PATTERN reference resolved to

    @property
    def label(self) -> str:
        """The document's own name (as Image Builder shows it), else what the recipe wrote."""
        return self.document.name or self.ref.label

    @property
    def version(self) -> str:
        if self.registry_version is not None:
            return self.registry_version
        return self.ref.version or ("builtin" if self.ref.name else "local")


@dataclass(frozen=True)
class LoadedRecipe:
    path: Path
    text: str
    digest: str
    recipe: Recipe
    components: list[ResolvedComponent] = field(default_factory=list)
    tests: list[ResolvedComponent] = field(default_factory=list)
    notices: list[Issue] = field(default_factory=list)  # deprecated registry versions used

    @property
    def warnings(self) -> list[Issue]:
        """What the component documents hold that AWSTOE accepts and ignores (unused input keys...),
        and the deprecated registry versions the recipe uses."""
        seen: list[Issue] = list(self.notices)
        for component in [*self.components, *self.tests]:
            seen.extend(w for w in component.document.warnings if w not in seen)
        return seen

    @property
    def test_components(self) -> list[ResolvedComponent]:
        """Everything with a test phase: the recipe's components (in order), then its ``tests``."""
        return [c for c in [*self.components, *self.tests] if "test" in c.document.phase_names]


def builtin_components() -> list[str]:
    """Names of the components shipped with Kiln (``update-os``, ``hardening/sshd``, ...)."""
    return sorted(str(p.relative_to(BUILTIN_DIR).with_suffix("")) for p in BUILTIN_DIR.rglob("*.yaml"))


def _component_path(ref: ComponentRef, recipe_dir: Path) -> Path | None:
    if ref.path is not None:
        try:
            return (recipe_dir / ref.path).resolve()
        except (OSError, RuntimeError):  # a symlink loop: reading it reports the problem
            return recipe_dir / ref.path
    candidate = (BUILTIN_DIR / f"{ref.name}.yaml").resolve()
    if BUILTIN_DIR in candidate.parents and candidate.is_file():
        return candidate
    return None


def _valid_refs(items: Any) -> list[ComponentRef | None]:
    """Component entries that parse on their own (their errors are already reported)."""
    refs: list[ComponentRef | None] = []
    for item in items if isinstance(items, list) else []:
        try:
            refs.append(ComponentRef.model_validate(item))
        except ValidationError:
            refs.append(None)
    return refs


def _resolve(
    source: SourceDocument,
    refs: Sequence[ComponentRef | None],
    issues: list[Issue],
    section: str = "components",
    secret_names: frozenset[str] = frozenset(),
    registry: ComponentRegistry | None = None,
    notices: list[Issue] | None = None,
) -> list[ResolvedComponent]:
    resolved = []
    for index, ref in enumerate(refs):
        if ref is None:
            continue
        loc = (section, index)
        hit: RegistryDocument | None = None
        if ref.registry is not None:
            hit = _fetch(source, loc, ref.registry, registry, issues)
            if hit is None:
                continue
            if hit.deprecation_reason is not None and notices is not None:
                message = f"component {hit.name}@{hit.version} is deprecated: {hit.deprecation_reason}"
                notices.append(source.issue((*loc, "name"), message))
        path = hit.path if hit is not None else _component_path(ref, source.path.parent)
        if path is None:
            known = ", ".join(builtin_components()) or "none"
            issues.append(
                source.issue((*loc, "name"), f"no built-in component '{ref.name}' (built-ins: {known})")
            )
            continue
        if not path.exists():
            issues.append(source.issue((*loc, "path"), f"component document not found: {path}"))
            continue
        try:
            document = load_checked(path)  # non-regular files are refused there, with the reason
        except ValidationFailed as exc:
            issues.extend(exc.issues)
            continue
        for param, secret in ref.secret_parameters.items():
            if section == "tests":
                message = f"parameter '{param}': secrets reach build and validate phases only, not tests"
                issues.append(source.issue((*loc, "parameters"), message))
            elif secret not in secret_names:
                message = f"parameter '{param}': no secret '{secret}' is declared in `secrets`"
                issues.append(source.issue((*loc, "parameters"), message))
        recorded = ref.recorded_parameters()
        for message in check_parameters(document, recorded):
            issues.append(source.issue((*loc, "parameters"), message))
        if hit is not None and document.digest != hit.digest:
            issues.append(
                source.issue((*loc, "name"), f"{path}: digest {document.digest} is not {hit.digest}")
            )
            continue
        version = hit.version if hit is not None else None
        resolved.append(
            ResolvedComponent(index, ref, document, recorded, dict(ref.secret_parameters), version)
        )
    return resolved


def _fetch(source: SourceDocument, loc: tuple[str, int], wanted: tuple[str, str],
           registry: ComponentRegistry | None, issues: list[Issue]) -> RegistryDocument | None:  # fmt: skip
    """Resolve ``NAME@PATTERN``; a failure is an issue at the reference (with the versions there are)."""
    if registry is None:
        issues.append(
            source.issue((*loc, "name"), f"{'@'.join(wanted)}: registry references need the catalog")
        )
        return None
    try:
        return registry.fetch(*wanted)
    except KilnError as exc:
        issues.append(source.issue((*loc, "name"), exc.message + (f" ({exc.hint})" if exc.hint else "")))
        return None


def _vm_test_issues(components: Sequence[ResolvedComponent]) -> list[Issue]:
    """Test steps a VM instance cannot run (see :mod:`kiln.toe.guest_steps`), at their file:line."""
    issues = []
    for component in components:
        phase = component.document.phase("test")
        for step in phase.steps if phase is not None else []:
            for suffix, message in guest_step_problems(step):
                where = f"phases[test].steps[{step.name}]{suffix}"
                issues.append(Issue(display_path(component.document.path), step.line, None, where, message))
    return issues


def load_recipe(
    path: Path, text: str | None = None, registry: ComponentRegistry | None = None
) -> LoadedRecipe:
    """Parse and validate ``path`` (or ``text``, read from there) and all its components; raise
    ValidationFailed with every issue. Relative component paths resolve against ``path``'s folder,
    ``NAME@PATTERN`` references through ``registry``."""
    source = parse_yaml(path, text)
    if not isinstance(source.data, dict):
        raise ValidationFailed([source.issue((), "a recipe must be a YAML mapping")])
    issues: list[Issue] = []
    try:
        recipe = Recipe.model_validate(source.data)
    except ValidationError as exc:
        issues.extend(source.issues_from(exc))
        for section in ("components", "tests"):  # report those too
            _resolve(source, _valid_refs(source.data.get(section)), issues, section, registry=registry)
        raise ValidationFailed(issues) from None
    secret_names = frozenset(s.name for s in recipe.secrets)
    notices: list[Issue] = []
    components = _resolve(source, recipe.components, issues, secret_names=secret_names, registry=registry,
                          notices=notices)  # fmt: skip
    tests = _resolve(source, recipe.tests, issues, "tests", registry=registry, notices=notices)
    for index, test in enumerate(tests):
        if "test" not in test.document.phase_names:
            issues.append(source.issue(("tests", index), f"{test.label}: has no test phase"))
    if "vm" in recipe.test_instance_kinds():
        issues.extend(_vm_test_issues([*components, *tests]))
    if issues:
        raise ValidationFailed(issues)
    digest = "sha256:" + hashlib.sha256(source.text.encode()).hexdigest()
    return LoadedRecipe(path.resolve(), source.text, digest, recipe, components, tests, notices)
