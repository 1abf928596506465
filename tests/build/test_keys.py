"""Cache keys: equal inputs give equal keys; anything that can change a layer changes its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.build.keys import component_layer_key, parent_layer_key, validate_key
from kiln.recipes.loader import ResolvedComponent
from kiln.recipes.model import ComponentRef, Settings
from kiln.toe.document import load_document

DOC = """\
name: demo
schemaVersion: 1.0
parameters:
  - Greeting: {type: string, default: hi}
phases:
  - name: build
    steps:
      - name: Say
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Greeting }}"]
"""


def component(tmp_path: Path, text: str = DOC, **parameters: str) -> ResolvedComponent:
    path = tmp_path / f"doc-{abs(hash(text))}.yaml"
    path.write_text(text)
    return ResolvedComponent(0, ComponentRef(path=str(path)), load_document(path), dict(parameters))


def test_equal_inputs_give_equal_keys(tmp_path: Path) -> None:
    a = component_layer_key("p", component(tmp_path), Settings(), 100)
    b = component_layer_key("p", component(tmp_path), Settings(), 100)
    assert a == b and len(a) == 64


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c, s: ("other-parent", c, s, 100), id="previous-layer"),
        pytest.param(lambda c, s: ("p", c, s, 101), id="epoch"),
        pytest.param(lambda c, s: ("p", c, Settings(environment={"A": "1"}), 100), id="environment"),
        pytest.param(lambda c, s: ("p", c, Settings(network=False), 100), id="network"),
        pytest.param(lambda c, s: ("p", c, Settings(working_directory="/srv"), 100), id="working-directory"),
        pytest.param(lambda c, s: ("p", c, Settings(compression_level=9), 100), id="compression"),
    ],
)
def test_each_input_changes_the_key(tmp_path: Path, change: object) -> None:
    base_component, base_settings = component(tmp_path), Settings()
    base = component_layer_key("p", base_component, base_settings, 100)
    args = change(base_component, base_settings)  # type: ignore[operator]
    assert component_layer_key(*args) != base


def test_document_and_parameters_change_the_key(tmp_path: Path) -> None:
    base = component_layer_key("p", component(tmp_path), Settings(), 100)
    assert component_layer_key("p", component(tmp_path, Greeting="hello"), Settings(), 100) != base
    edited = component(tmp_path, DOC.replace("echo", "printf"))
    assert component_layer_key("p", edited, Settings(), 100) != base


def test_parent_and_validate_keys(tmp_path: Path) -> None:
    assert parent_layer_key("k", 1, 6) == parent_layer_key("k", 1, 6)
    assert parent_layer_key("k", 1, 6) != parent_layer_key("k", 2, 6)
    c = component(tmp_path)
    assert validate_key("top", [c], Settings()) != validate_key("other-top", [c], Settings())
    assert validate_key("top", [c], Settings()) != validate_key(
        "top", [component(tmp_path, Greeting="x")], Settings()
    )
