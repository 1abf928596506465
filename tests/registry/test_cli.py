"""``kiln components …`` and ``kiln recipes …`` through the real CLI: output, JSON and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import kiln
from tests.registry.conftest import document


def test_components_commands(tmp_path: Path, write_doc: Callable[..., Path]) -> None:
    home = tmp_path / "home"
    doc = write_doc("nginx", "1.2.0")
    published = kiln("components", "publish", str(doc), home=home)
    assert "published component nginx@1.2.0 (sha256:" in published.stdout
    again = kiln("components", "publish", str(doc), "--version", "1.2.0", home=home)
    assert "component nginx@1.2.0 already published, unchanged" in again.stdout
    changed = kiln(
        "components", "publish", str(write_doc("nginx", "1.2.0", marker="other")), home=home, check=False
    )
    assert changed.returncode == 1 and "already published with other content" in changed.stderr
    disagree = kiln("components", "publish", str(doc), "--version", "1.3.0", home=home, check=False)
    assert (
        disagree.returncode == 2
        and "the document says version 1.2.0 but --version is 1.3.0" in disagree.stderr
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(document("bad", "1.0.0").replace("ExecuteBash", "ExecuteBashh"))
    invalid = kiln("components", "publish", str(bad), home=home, check=False)
    assert (
        invalid.returncode == 2
        and f"{bad}:9:9: phases[build].steps[Write].action: unknown action" in invalid.stderr
    )

    listed = kiln("components", "list", "--json", home=home).json()
    assert {(c["name"], c["version"], c["builtin"]) for c in listed} >= {
        ("nginx", "1.2.0", False), ("update-os", "1.0.0", True), ("hardening/sshd", "1.0.0", True),
    }  # fmt: skip
    assert [
        c["version"] for c in kiln("components", "list", "--name", "nginx", "--json", home=home).json()
    ] == ["1.2.0"]
    assert kiln("components", "show", "nginx@1.x", "--document", home=home).stdout == doc.read_text()
    shown = kiln("components", "show", "nginx", "--json", home=home).json()
    assert (shown["version"], shown["state"], shown["document"]) == ("1.2.0", "active", doc.read_text())
    missing = kiln("components", "show", "nginx@2.x", home=home, check=False)
    assert missing.returncode == 1
    assert "available versions of nginx: 1.2.0" in missing.stderr

    kiln("components", "deprecate", "nginx@1.2.0", "--reason", "use 1.3", home=home)
    shown = kiln("components", "show", "nginx@1.2.0", "--json", home=home).json()
    assert (shown["state"], shown["deprecation_reason"]) == ("deprecated", "use 1.3")
    assert "deprecated" in kiln("components", "show", "nginx@1.2.0", home=home).stdout
    unpinned = kiln("components", "deprecate", "nginx", "--reason", "r", home=home, check=False)
    assert unpinned.returncode == 2 and "names no version" in unpinned.stderr


def test_recipes_commands(tmp_path: Path, write_doc: Callable[..., Path]) -> None:
    home = tmp_path / "home"
    kiln("components", "publish", str(write_doc("nginx", "1.0.0")), home=home)
    recipe = tmp_path / "web.yaml"
    recipe.write_text(
        "name: web\nversion: 2.0.0\nparent: debian:bookworm\ncomponents: [update-os@1.x, nginx@1.x]\n"
    )
    assert "published recipe web@2.0.0" in kiln("recipes", "publish", str(recipe), home=home).stdout
    assert "already published, unchanged" in kiln("recipes", "publish", str(recipe), home=home).stdout
    (listed,) = kiln("recipes", "list", "--json", home=home).json()
    assert (listed["name"], listed["version"], listed["components"]) == (
        "web",
        "2.0.0",
        ["update-os@1.x", "nginx@1.x"],
    )
    assert kiln("recipes", "show", "web@2.x", "--document", home=home).stdout == recipe.read_text()
    assert "nginx@1.x" in kiln("recipes", "show", "web", home=home).stdout
    (tmp_path / "step.yaml").write_text(document("step"))
    local = tmp_path / "local.yaml"
    local.write_text("name: local\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [step.yaml]\n")
    refused = kiln("recipes", "publish", str(local), home=home, check=False)
    assert (
        refused.returncode == 2
        and "a published recipe uses built-in and registry components only" in refused.stderr
    )
    validated = kiln("validate", str(recipe), home=home)  # kiln validate resolves registry references too
    assert "valid" in validated.stderr
