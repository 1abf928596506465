"""Pipeline files and their recipes: the shipped example loads; --param overrides rewrite the recipe
for the components that declare the parameter, in either parameter form."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.models import RecipeSource
from kiln.pipelines import recipes
from kiln.pipelines.load import load_pipelines
from kiln.recipes.loader import load_recipe
from tests.pipelines.conftest import COMPONENT

REPO = Path(__file__).resolve().parents[2]


def test_the_example_pipeline_loads() -> None:
    [example] = load_pipelines(REPO / "examples/pipelines")
    assert example.pipeline.name == "debian-web" and example.image == "debian-web" and example.parents == ()
    assert example.pipeline.timetable is not None and example.pipeline.timetable.expression == "0 4 * * 1-5"


@pytest.mark.parametrize("form", ["{Greeting: hi}", "[{name: Greeting, value: [hi]}]"])
def test_param_overrides_rewrite_only_declaring_components(tmp_path: Path, form: str) -> None:
    (tmp_path / "marker.yaml").write_text(COMPONENT)
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\n"
        f"components:\n  - path: marker.yaml\n    parameters: {form}\n  - update-os\n"
    )
    source = RecipeSource.read(path)
    loaded, issues = recipes.validate(source)
    assert loaded is not None and issues == []
    changed = recipes.with_parameters(source, loaded, {"Greeting": "moin"})
    reloaded = load_recipe(changed.path, changed.text)
    assert reloaded.components[0].parameters == {"Greeting": "moin"}
    assert reloaded.components[1].ref.name == "update-os" and reloaded.components[1].parameters == {}
    with pytest.raises(ValidationFailed, match="'servus' is not one of the allowed values"):
        recipes.with_parameters(source, loaded, {"Greeting": "servus"})


def test_kiln_parents_are_read_from_the_recipe() -> None:
    assert recipes.parent_images("parent: {image: 'kiln:base@1.x'}") == ["base"]
    assert recipes.parent_images("parent: kiln:base") == ["base"]
    assert recipes.parent_images("parent: debian:bookworm") == []
    assert recipes.is_catalogued("web@1.2.0") and not recipes.is_catalogued("web.yaml")
