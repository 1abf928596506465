"""Recipe validation: every bad input is reported at once with file:line:column, field and message."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.recipes.loader import builtin_components, load_recipe
from kiln.recipes.model import Recipe

REPO = Path(__file__).resolve().parents[2]
NGINX = REPO / "examples/components/nginx.yaml"

GOOD = """\
name: web
version: 1.0.0
parent: debian:bookworm
components:
  - update-os
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text.replace("NGINX", str(NGINX)))
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as info:
        load_recipe(path)
    assert info.value.exit_code == 2
    return [str(i).replace(str(path), "R") for i in info.value.issues]


CASES = [
    pytest.param(
        GOOD.replace("1.0.0", "1.0"),
        ["R:2:1: version: '1.0' is not a semantic version x.y.z (e.g. 1.0.0)"],
        id="version-not-semver",
    ),
    pytest.param(
        GOOD.replace("name: web", "name: Web Server"),
        ["R:1:1: name: must be lowercase letters, digits, '.', '_' or '-' (at most 128)"],
        id="bad-name",
    ),
    pytest.param(
        GOOD.replace("debian:bookworm", "centos:7"),
        [
            "R:3:1: parent.image: unsupported parent 'centos:7': expected debian:SUITE, ubuntu:SUITE, "
            "kiln:NAME@1.x|1.2.x|1.2.0|1.2.0/3|latest|sha256:…|CHANNEL, oci-layout:PATH[:TAG] or "
            "docker://HOST/REPO:TAG@sha256:…"
        ],
        id="unknown-parent",
    ),
    pytest.param(GOOD + "colour: red\n", ["R:6:1: colour: unknown field"], id="unknown-field"),
    pytest.param(
        GOOD.replace("  - update-os", "  - no-such"),
        ["R:5:5: components[0].name: no built-in component 'no-such' (built-ins: {builtins})"],
        id="unknown-builtin",
    ),
    pytest.param(
        GOOD.replace("  - update-os", "  - path: nowhere.yaml"),
        ["R:5:5: components[0].path: component document not found: {dir}/nowhere.yaml"],
        id="missing-document",
    ),
    pytest.param(
        GOOD.replace("  - update-os", "  - path: NGINX\n    parameters: {Prot: '8080'}"),
        [
            "R:6:5: components[0].parameters: nginx: unknown parameter 'Prot' (did you mean 'Port'?); declared: Port"
        ],
        id="unknown-parameter",
    ),
    pytest.param(
        GOOD.replace(
            "  - update-os", "  - name: update-os\n    parameters:\n      - name: X\n        value: [a, b]"
        ),
        ["R:5:5: components[0]: parameter 'X': value must be a list with exactly one string"],
        id="parameter-two-values",
    ),
    pytest.param(
        GOOD + "outputs: [floppy]\n",
        [
            "R:6:11: outputs[0]: unknown type 'floppy' (expected one of: 'oci', 'raw', 'qcow2', 'vmdk', 'vhdx', 'vhd', 'oci-archive', 'docker-archive', 'rootfs-tar')"
        ],
        id="unknown-output",
    ),
    pytest.param(
        GOOD.replace("components:\n  - update-os\n", ""),
        ["R:1:1: components: required field is missing"],
        id="no-components",
    ),
    pytest.param(
        "name: [unclosed\n",
        ["R:2:1: invalid YAML: while parsing a flow sequence expected ',' or ']', but got '<stream end>'"],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_recipes_are_rejected_with_positions(tmp_path: Path, text: str, expected: list[str]) -> None:
    builtins = ", ".join(builtin_components())
    assert errors(tmp_path, text) == [e.format(dir=tmp_path, builtins=builtins) for e in expected]


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        GOOD.replace("1.0.0", "one").replace("  - update-os", "  - no-such\n  - path: gone.yaml") + "x: 1\n"
    )
    found = errors(tmp_path, text)
    assert len(found) == 4
    assert [f.split(":")[1] for f in found] == ["2", "5", "6", "7"]


def test_example_recipe_is_valid() -> None:
    loaded = load_recipe(REPO / "examples/recipes/debian-web.yaml")
    assert [c.label for c in loaded.components] == ["update-os", "nginx", "hello-page"]
    assert loaded.components[1].parameters == {"Port": "80"}
    assert loaded.digest.startswith("sha256:")


def test_schema_is_generated_from_the_model() -> None:
    schema = Recipe.model_json_schema()
    assert set(schema["required"]) == {"name", "version", "parent", "components"}
    assert "parameters" in schema["$defs"]["ComponentRef"]["properties"]


def test_test_instances_need_matching_outputs(tmp_path: Path) -> None:
    text = GOOD + "outputs: [oci]\nsettings: {test_instances: [vm]}\n"
    found = errors(tmp_path, text)
    assert found == ["R:1:1: settings.test_instances: 'vm' needs a disk output (raw, qcow2, ...)"]


def test_disk_outputs_take_disk_options(tmp_path: Path) -> None:
    found = errors(tmp_path, GOOD + "outputs:\n  - type: qcow2\n    size: 1M\n    boot: floppy\n")
    assert found == [
        "R:8:5: outputs[0].size: a disk must be at least 64M",
        "R:9:5: outputs[0].boot: Input should be 'uefi', 'bios' or 'hybrid'",
    ]


FILE_TEST = """\
name: file-test
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Marker
        action: ExecuteBash
        inputs:
          commands: ['true']
      - name: WriteFile
        action: CreateFile
        inputs:
          - path: /tmp/x
            content: x
      - name: Looped
        action: ExecuteBash
        loop: {forEach: [a, b]}
        inputs:
          commands: ['true']
"""


def test_vm_test_phases_run_only_what_a_guest_can_at_load_time(tmp_path: Path) -> None:
    """A VM guest runs ExecuteBash/ExecuteBinary scripts: other test steps are refused with file:line
    when the recipe loads, not after the build (disk outputs test on a VM unless settings say otherwise)."""
    doc = tmp_path / "file-test.yaml"
    doc.write_text(FILE_TEST)
    vm = GOOD + f"tests:\n  - path: {doc}\noutputs:\n  - type: qcow2\n    size: 2G\n"
    assert errors(tmp_path, vm) == [
        f"{doc}:10: phases[test].steps[WriteFile].action: CreateFile cannot run in a VM test phase (VM tests "
        "run ExecuteBash and ExecuteBinary steps); use a container instance, or a bash step",
        f"{doc}:15: phases[test].steps[Looped]: loop and if are not supported in VM test phases yet",
    ]
    container = vm.replace("  - type: qcow2", "  - type: oci\n  - type: qcow2") + (
        "settings: {test_instances: [container]}\n"
    )
    assert [c.label for c in load_recipe(write(tmp_path, container)).test_components] == ["file-test"]


def test_the_examples_validate() -> None:
    for recipe in sorted((REPO / "examples/recipes").glob("*.yaml")):
        assert load_recipe(recipe).recipe.name, recipe
