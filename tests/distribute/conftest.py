"""One small real image (real CLI build from the shared parent cache, signed provenance, SBOMs),
built once per session; tests publish it with distinct target names so their histories stay apart."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.evidence.signing import generate_key

KILN = Path(__file__).resolve().parents[2] / ".venv/bin/kiln"

COMPONENT = """\
name: motd
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Write
        action: CreateFile
        inputs:
          - path: /etc/motd
            content: "distributed\\n"
            overwrite: true
  - name: test
    steps:
      - name: Read
        action: ExecuteBash
        inputs:
          commands: ["grep -qx distributed /etc/motd"]
"""

RECIPE = """\
name: tiny-dist
version: 1.2.3
parent: {image: "debian:bookworm"}
components:
  - path: motd.yaml
signing: {key: signing.key}
settings: {network: false}
"""


@dataclass(frozen=True)
class Built:
    home: Path
    work: Path
    key: Path
    image: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.image['name']}@{self.image['version']}/{self.image['build']}"


def kiln(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "KILN_HOME": str(home), **(env or {})}
    full.pop("KILN_DATABASE_URL", None)
    return subprocess.run([str(KILN), *args], capture_output=True, text=True, env=full, check=False)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("distribute")
    (work / "motd.yaml").write_text(COMPONENT)
    (work / "recipe.yaml").write_text(RECIPE)
    pair = generate_key(work / "signing.key")
    home = work / "home"
    result = kiln("build", str(work / "recipe.yaml"), "--json", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return Built(home, work, pair.private, json.loads(result.stdout)["image"])


def build_own(work: Path, name: str) -> Built:
    """A build of its own (own data dir, recipe ``name``) for a test that changes the image's state."""
    (work / "motd.yaml").write_text(COMPONENT)
    (work / "recipe.yaml").write_text(RECIPE.replace("tiny-dist", name))
    pair = generate_key(work / "signing.key")
    result = kiln("build", str(work / "recipe.yaml"), "--json", home=work / "home")
    assert result.returncode == 0, result.stdout + result.stderr
    return Built(work / "home", work, pair.private, json.loads(result.stdout)["image"])


def write_targets(path: Path, body: str) -> Path:
    path.write_text("distribution:\n" + body)
    return path
