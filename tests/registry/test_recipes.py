"""Published recipes: validated like kiln validate, self-contained, immutable, loadable without a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.errors import NotFound, ValidationFailed
from kiln.recipes.loader import load_recipe
from kiln.registry.components import PublishConflict, publish_component
from kiln.registry.recipes import get_recipe, list_recipes, load_published_recipe, publish_recipe
from kiln.registry.resolver import CatalogRegistry

RECIPE = """\
name: web
version: {version}
description: web server
parent: debian:bookworm
components:
  - update-os@1.x
  - nginx@1.x
"""


def _recipe(folder: Path, version: str = "1.0.0", extra: str = "") -> Path:
    path = folder / f"web-{version}-{len(extra)}.yaml"
    path.write_text(RECIPE.format(version=version) + extra)
    return path


def test_publish_list_show_and_load(catalog: Catalog, write_doc: Callable[..., Path], tmp_path: Path) -> None:
    publish_component(catalog, write_doc("nginx", "1.0.0"), who="t")
    first = publish_recipe(catalog, _recipe(tmp_path), who="t")
    assert (first.created, first.name, first.version) == (True, "web", "1.0.0")
    assert not publish_recipe(catalog, _recipe(tmp_path), who="t").created  # same bytes: unchanged
    publish_recipe(catalog, _recipe(tmp_path, "1.1.0"), who="t")
    assert [(r.ref, r.components) for r in list_recipes(catalog)] == [
        ("web@1.0.0", ["update-os@1.x", "nginx@1.x"]),
        ("web@1.1.0", ["update-os@1.x", "nginx@1.x"]),
    ]
    assert get_recipe(catalog, "web", "1.0.x").recipe.version == "1.0.0"
    source = load_published_recipe(catalog, "web", "1.x")
    assert source.path.name == "web@1.1.0.yaml" and "version: 1.1.0" in source.text
    # What run_build does with it: the components resolve against the registry, no file needed.
    loaded = load_recipe(source.path, source.text, registry=CatalogRegistry(lambda: catalog, tmp_path / "d"))
    assert [(c.label, c.version) for c in loaded.components] == [("update-os", "1.0.0"), ("nginx", "1.0.0")]
    with pytest.raises(NotFound, match=r"no published version of recipe web matches 2.x") as missing:
        load_published_recipe(catalog, "web", "2.x")
    assert missing.value.hint == "available versions of web: 1.0.0, 1.1.0"


def test_same_version_other_content_is_refused(
    catalog: Catalog, write_doc: Callable[..., Path], tmp_path: Path
) -> None:
    publish_component(catalog, write_doc("nginx", "1.0.0"), who="t")
    publish_recipe(catalog, _recipe(tmp_path), who="t")
    with pytest.raises(PublishConflict, match=r"recipe web@1.0.0 .* already published with other content"):
        publish_recipe(catalog, _recipe(tmp_path, extra="labels: {team: web}\n"), who="t")


def test_local_files_and_bad_references_are_refused(
    catalog: Catalog, write_doc: Callable[..., Path], tmp_path: Path
) -> None:
    publish_component(catalog, write_doc("nginx", "1.0.0"), who="t")
    (tmp_path / "local.yaml").write_text(write_doc("local").read_text())
    with pytest.raises(ValidationFailed) as refused:
        publish_recipe(catalog, _recipe(tmp_path, extra="  - local.yaml\n"), who="t")
    (issue,) = refused.value.issues
    assert issue.line == 8 and "the local component file local.yaml" in issue.message
    assert "kiln components publish local.yaml" in issue.message
    with pytest.raises(ValidationFailed, match=r"no published version of component nginx matches 9.x"):
        publish_recipe(catalog, _bad(tmp_path), who="t")
    assert list_recipes(catalog) == []


def _bad(folder: Path) -> Path:
    path = folder / "bad.yaml"
    path.write_text(RECIPE.format(version="1.0.0").replace("nginx@1.x", "nginx@9.x"))
    return path
