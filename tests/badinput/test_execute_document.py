"""ExecuteDocument at run time reads documents only inside the component's folder (or, for an
absolute path, inside the image), never a host file, and never shows a document's content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiln.errors import ValidationFailed
from kiln.toe.actions import ActionContext, ActionFailed
from kiln.toe.actions.document import ExecuteDocument
from kiln.toe.nesting import load_checked
from kiln.toe.runner import RootfsTarget
from tests.badinput.generate import VALID_DOC

SECRET = "s3cr3t-value-do-not-print"


class Called(Exception):
    """Raised by the nested runner: ExecuteDocument chose this file."""


def nested(path: Path, phases: list[str], parameters: dict[str, str]) -> Any:
    raise Called(str(path))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """image/ (a root filesystem), host/secret.yaml (outside), component/{main,sub/inner}.yaml."""
    (tmp_path / "image" / "docs").mkdir(parents=True)
    (tmp_path / "image" / "docs" / "in-image.yaml").write_text(VALID_DOC)
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret.yaml").write_text(f"password: {SECRET}\n")
    (tmp_path / "component" / "sub").mkdir(parents=True)
    (tmp_path / "component" / "main.yaml").write_text(VALID_DOC)
    (tmp_path / "component" / "sub" / "inner.yaml").write_text(VALID_DOC)
    (tmp_path / "component" / "out.yaml").symlink_to(tmp_path / "host" / "secret.yaml")
    return tmp_path


def run(tree: Path, document: str, *, caller: str = "component") -> str:
    ctx = ActionContext(
        target=RootfsTarget(tree / "image"), document="main", phase="build", step="Call", timeout=None,
        output=lambda line: None, services={"document_dir": tree / caller, "document_root": tree / "component"},
        nested=nested,
    )  # fmt: skip
    action = ExecuteDocument()
    with pytest.raises((Called, ActionFailed)) as info:
        action.run(ctx, action.parse({"document": document}))
    assert SECRET not in str(info.value)
    return f"called {info.value}" if isinstance(info.value, Called) else str(info.value)


def test_relative_paths_stay_in_the_component(tree: Path) -> None:
    assert run(tree, "sub/inner.yaml") == f"called {tree / 'component' / 'sub' / 'inner.yaml'}"
    assert run(tree, "../main.yaml", caller="component/sub") == f"called {tree / 'component' / 'main.yaml'}"
    for outside in ("../host/secret.yaml", "../../../../../../etc/passwd", "sub/../../host/secret.yaml"):
        assert "outside the component's folder" in run(tree, outside)
    assert "outside the component's folder" in run(tree, "out.yaml")  # a symlink out
    assert "not found" in run(tree, "missing.yaml")


def test_absolute_paths_are_looked_up_in_the_image_only(tree: Path) -> None:
    assert run(tree, "/docs/in-image.yaml") == f"called {tree / 'image' / 'docs' / 'in-image.yaml'}"
    host_file = tree / "host" / "secret.yaml"  # exists on the host, not in the image
    assert "not found in the image" in run(tree, str(host_file))
    assert "not found in the image" in run(tree, "/etc/passwd")


def test_validation_never_shows_a_document_s_content(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        VALID_DOC + "      - {name: Call, action: ExecuteDocument, inputs: {document: dup.yaml}}\n"
    )
    (tmp_path / "dup.yaml").write_text(f"password: {SECRET}\npassword: {SECRET}-2\n")
    with pytest.raises(ValidationFailed) as info:
        load_checked(tmp_path / "main.yaml")
    assert "dup.yaml:2:1:" in info.value.message and "duplicate key" in info.value.message
    assert SECRET not in info.value.message
