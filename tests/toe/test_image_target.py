"""``kiln toe run --target image:NAME@VERSION``: a throwaway root unpacked from a catalogued image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

COMPONENT = """\
name: marker
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Mark
        action: CreateFile
        inputs:
          - path: /etc/kiln-image-marker
            content: "built by kiln\\n"
"""

RECIPE = """\
name: toe-target
version: 1.0.0
description: a tiny image for the kiln toe image target test
parent:
  image: debian:bookworm
components:
  - path: marker.yaml
outputs:
  - type: oci
"""

CHECK = """\
name: check
schemaVersion: 1.0
phases:
  - name: test
    steps:
      - name: Marker
        action: ExecuteBash
        inputs:
          commands: ['cat /etc/kiln-image-marker', 'echo changed > /etc/kiln-image-marker']
"""


def kiln(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "kiln.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=900)  # fmt: skip


def test_image_target_runs_in_a_throwaway_copy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "marker.yaml").write_text(COMPONENT)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    (tmp_path / "check.yaml").write_text(CHECK)
    built = kiln(home, "build", str(tmp_path / "recipe.yaml"))
    assert built.returncode == 0, built.stderr
    done = kiln(home, "toe", "run", "--target", "image:toe-target@1.0.0", "-d", str(tmp_path / "check.yaml"),
                "-l", str(tmp_path / "logs"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "success" and Path(summary["logUrl"]).is_absolute()
    assert "built by kiln" in done.stderr
    assert list((home / "tmp").iterdir()) == []  # the unpacked root is gone
    kept = kiln(home, "toe", "run", "--target", "image:toe-target", "-d", str(tmp_path / "check.yaml"),
                "-l", str(tmp_path / "logs"), "--keep")  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert list((home / "tmp").iterdir()) == []
    (holder,) = (home / "kept").iterdir()
    assert (holder / "rootfs/etc/kiln-image-marker").read_text() == "changed\n"
