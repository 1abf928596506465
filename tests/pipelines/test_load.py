"""Pipeline files and their recipes: the shipped example loads; --param overrides rewrite the recipe
for the components that declare the parameter, in either parameter form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kiln.catalog import Catalog
from kiln.errors import ValidationFailed
from kiln.models import RecipeSource
from kiln.pipelines import recipes
from kiln.pipelines.load import load_pipelines
from kiln.recipes.loader import load_recipe
from kiln.recipes.model import Recipe
from tests.pipelines.conftest import COMPONENT

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def catalogued(tmp_path: Path) -> Iterator[recipes.PipelineRecipes]:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:
        yield recipes.PipelineRecipes(catalog)


def test_the_example_pipeline_loads(catalogued: recipes.PipelineRecipes) -> None:
    [example] = load_pipelines(REPO / "examples/pipelines", catalogued)
    assert example.pipeline.name == "debian-web" and example.image == "debian-web" and example.parents == ()
    assert example.pipeline.timetable is not None and example.pipeline.timetable.expression == "0 4 * * 1-5"


@pytest.mark.parametrize("form", ["{Greeting: hi}", "[{name: Greeting, value: [hi]}]"])
def test_param_overrides_rewrite_only_declaring_components(
    tmp_path: Path, form: str, catalogued: recipes.PipelineRecipes
) -> None:
    (tmp_path / "marker.yaml").write_text(COMPONENT)
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\n"
        f"components:\n  - path: marker.yaml\n    parameters: {form}\n  - update-os\n"
    )
    source = RecipeSource.read(path)
    loaded, issues = catalogued.validate(source)
    assert loaded is not None and issues == []
    changed = recipes.with_parameters(source, loaded, {"Greeting": "moin"})
    reloaded = load_recipe(changed.path, changed.text)
    assert reloaded.components[0].parameters == {"Greeting": "moin"}
    assert reloaded.components[1].ref.name == "update-os" and reloaded.components[1].parameters == {}
    with pytest.raises(ValidationFailed, match="'servus' is not one of the allowed values"):
        recipes.with_parameters(source, loaded, {"Greeting": "servus"})


def model(parent: str, components: str = "[update-os]") -> Recipe:
    return Recipe.model_validate(
        YAML(typ="safe").load(f"name: web\nversion: 1.0.0\nparent: {parent}\ncomponents: {components}\n")
    )


def test_kiln_parents_and_component_ranges_are_read_from_the_recipe_model() -> None:
    assert recipes.kiln_parents(model("{image: 'kiln:base@1.x'}")) == ("base",)
    assert recipes.kiln_parents(model("kiln:base")) == ("base",)
    assert recipes.kiln_parents(model("debian:bookworm")) == ()
    assert recipes.kiln_parents(model("'oci-layout:base'")) == ()
    ranges = "[nginx@1.x, tools@latest, pinned@1.2.3, update-os, nginx@1.x, x.yaml]"
    assert recipes.component_ranges(model("debian:bookworm", ranges)) == ("nginx@1.x", "tools@latest")
    assert recipes.is_catalogued("web@1.2.0") and recipes.is_catalogued("web@latest")
    assert not recipes.is_catalogued("web.yaml")
