"""A layer's key covers what the build phase depends on, not the validate and test phases."""

from __future__ import annotations

from pathlib import Path

from kiln.build.keys import component_layer_key, validate_key
from kiln.recipes.loader import ResolvedComponent
from kiln.recipes.model import ComponentRef, Settings
from kiln.toe.nesting import load_checked

DOC = """\
name: demo
schemaVersion: 1.0
parameters:
  - Greeting: {type: string, default: hi}
constants:
  - Where: {type: string, value: /etc/motd}
phases:
  - name: build
    steps:
      - name: Say
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Greeting }} > {{ Where }}"]
      - name: Include
        action: ExecuteDocument
        inputs:
          document: parts/extra.yaml
  - name: validate
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands: ["test -s {{ Where }}"]
      - name: ValidateInclude
        action: ExecuteDocument
        inputs:
          document: checks.yaml
  - name: test
    steps:
      - name: Probe
        action: ExecuteBash
        inputs:
          commands: ["grep -q hi /etc/motd"]
"""

PART = """\
name: {name}
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Run
        action: ExecuteBash
        inputs:
          commands: ["{command}"]
"""


def layer_key(tmp_path: Path, doc: str = DOC, extra: str = "true", checks: str = "true") -> str:
    folder = tmp_path / "component"
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    (folder / "parts/extra.yaml").write_text(PART.format(name="extra", command=extra))
    (folder / "checks.yaml").write_text(PART.format(name="checks", command=checks))
    (folder / "demo.yaml").write_text(doc)
    document = load_checked(folder / "demo.yaml")
    component = ResolvedComponent(0, ComponentRef(path=str(folder / "demo.yaml")), document, {})
    return component_layer_key("previous", component, Settings(), 100)


def test_editing_validate_or_test_keeps_the_key(tmp_path: Path) -> None:
    base = layer_key(tmp_path)
    assert layer_key(tmp_path, DOC.replace("test -s", "test -f")) == base
    assert layer_key(tmp_path, DOC.replace("grep -q hi", "grep -qx hi")) == base
    assert layer_key(tmp_path, checks="false") == base  # included from validate only


def test_what_the_build_phase_reads_changes_the_key(tmp_path: Path) -> None:
    base = layer_key(tmp_path)
    changed = {
        "build step": layer_key(tmp_path, DOC.replace("echo {{", "printf {{")),
        "parameter default": layer_key(tmp_path, DOC.replace("default: hi", "default: hello")),
        "constant": layer_key(tmp_path, DOC.replace("value: /etc/motd", "value: /etc/issue")),
        "included document": layer_key(tmp_path, extra="false"),
    }
    assert all(key != base for key in changed.values()), changed
    assert len(set(changed.values())) == len(changed)


def test_the_validate_stage_still_runs_again_after_a_validate_edit(tmp_path: Path) -> None:
    def validated(doc: str) -> str:
        layer_key(tmp_path, doc)
        document = load_checked(tmp_path / "component/demo.yaml")
        component = ResolvedComponent(0, ComponentRef(path="demo.yaml"), document, {})
        return validate_key("top", [component], Settings())

    assert validated(DOC) != validated(DOC.replace("test -s", "test -f"))
