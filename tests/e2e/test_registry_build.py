"""A build from the registry alone: a published recipe whose component is ``note@1.x`` records the
exact version and digest it used in the catalog, the lock file and the provenance."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

NOTE = """\
name: note
version: {version}
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Write
        action: ExecuteBash
        inputs:
          commands: ["echo {version} > /etc/kiln-note"]
"""

RECIPE = """\
name: from-registry
version: 1.0.0
parent: debian:bookworm
components: [note@1.x]
outputs: [oci]
"""


def test_build_of_a_published_recipe_records_the_registry_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        (tmp_path / f"note-{version}.yaml").write_text(NOTE.format(version=version))
        kiln("components", "publish", str(tmp_path / f"note-{version}.yaml"), home=home)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    kiln("recipes", "publish", str(tmp_path / "recipe.yaml"), home=home)
    kiln("components", "deprecate", "note@1.1.0", "--reason", "writes the wrong file", home=home)
    (tmp_path / "recipe.yaml").unlink()  # the build needs no file

    built = kiln("build", "kiln:recipes/from-registry@1.x", "--json", home=home)
    image = built.json()["image"]
    note = kiln("components", "show", "note@1.0.0", "--json", home=home).json()
    # 1.1.0 is deprecated and 1.0.0 is active: the wildcard takes 1.0.0 (and says nothing)
    assert [(c["name"], c["version"], c["digest"]) for c in image["components"]] == [
        ("note", "1.0.0", note["digest"])
    ]
    assert "deprecated" not in built.stderr
    lock = json.loads(Path(next(a["path"] for a in image["artifacts"] if a["kind"] == "lock")).read_text())
    assert [(c["name"], c["version"], c["digest"]) for c in lock["components"]] == [
        ("note", "1.0.0", note["digest"])
    ]
    provenance = next(e for e in image["evidence"] if e["kind"] == "provenance")
    statement = _statement(Path(provenance["path"]))
    uris = [d["uri"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert "kiln:component/note@1.0.0" in uris
    assert (
        image["recipe_digest"]
        == kiln("recipes", "show", "from-registry", "--json", home=home).json()["digest"]
    )

    # Pinned to the deprecated version: it builds, and warns with the reason.
    (tmp_path / "pinned.yaml").write_text(RECIPE.replace("note@1.x", "note@1.1.0"))
    strict = kiln("build", str(tmp_path / "pinned.yaml"), "--strict", home=home, check=False)
    assert strict.returncode == 2 and "pinned.yaml:4" in strict.stderr and "is deprecated" in strict.stderr
    pinned = kiln("build", str(tmp_path / "pinned.yaml"), "--json", home=home)
    assert "component note@1.1.0 is deprecated: writes the wrong file" in " ".join(pinned.stderr.split())
    assert [c["version"] for c in pinned.json()["image"]["components"]] == ["1.1.0"]
    # No version matches: nothing is built, and the error lists the versions there are.
    (tmp_path / "missing.yaml").write_text(RECIPE.replace("note@1.x", "note@3.x"))
    missing = kiln("build", str(tmp_path / "missing.yaml"), home=home, check=False)
    assert missing.returncode == 2
    assert "available versions of note: 1.0.0, 1.1.0 (deprecated), 2.0.0" in " ".join(missing.stderr.split())


def _statement(path: Path) -> dict[str, object]:
    """The in-toto statement of a provenance file (a DSSE envelope when signed)."""
    data = json.loads(path.read_text())
    if "payload" in data:
        data = json.loads(base64.b64decode(data["payload"]))
    assert isinstance(data, dict)
    return data
