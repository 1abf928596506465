"""A real ``kiln daemon --once`` run of a pipeline with a directory target: the build is published
there (every artifact, SHA256SUMS that verifies, manifest.json), the attempt is recorded for
``kiln distributions``, and the run's history shows what was distributed."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.documents import create_file_component
from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

RECIPE = """\
name: released
version: 0.1.0
parent: debian:bookworm
labels: {{test-run: "{run}"}}
components:
  - path: marker.yaml
distribution:
  - {{name: shelf, type: directory, path: shelf}}
"""

MARKER = create_file_component("released", name="marker", path="/etc/kiln-marker")

PIPELINE = "name: released\nrecipe: recipe.yaml\ntriggers: [manual]\ndistribution: [shelf]\n"


def test_daemon_once_distributes_the_build_to_the_pipelines_directory_target(tmp_path: Path) -> None:
    (tmp_path / "marker.yaml").write_text(MARKER)
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(run=uuid.uuid4().hex))
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    home = tmp_path / "home"
    kiln("pipelines", "apply", str(tmp_path / "pipeline.yaml"), home=home)
    kiln("pipelines", "run", "released", home=home)
    kiln("daemon", "--once", home=home)
    [run] = kiln("pipelines", "history", "released", "--json", home=home).json()
    assert run["status"] == "succeeded" and run["reason"] == "distributed shelf (directory) published"
    image = kiln("images", "show", "released", "--json", home=home).json()
    folder = tmp_path / "shelf" / "released" / f"0.1.0-{image['build']}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["image"]["digest"] == image["digest"]
    check = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=folder, capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert check.returncode == 0 and check.stdout.count(": OK") >= 2, check.stdout + check.stderr
    ref = f"released@0.1.0/{image['build']}"
    [attempt] = kiln("distributions", ref, "--json", home=home).json()
    assert attempt["status"] == "succeeded" and attempt["requester"] == f"pipeline released run {run['id']}"
    again = kiln("distribute", ref, home=home)  # already published: nothing changes
    assert "already published, nothing changed" in again.stdout
