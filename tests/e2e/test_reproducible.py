"""`kiln build --check-reproducible`: a second build from the same inputs must be bit-identical."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

COMPONENT = """\
name: motd
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: WriteMotd
        action: CreateFile
        inputs:
          - path: /etc/motd
            content: "Built by Kiln\\n"
      - name: AddUser
        action: ExecuteBash
        inputs:
          commands:
            - useradd --system --no-create-home svc-kiln
            - STAMP
"""

RECIPE = """\
name: tiny
version: 1.0.0
parent: debian:bookworm
components:
  - path: motd.yaml
"""


TRACKER = (
    Path(__file__).resolve().parents[1] / "fixtures/vuln/debian-security-tracker-json/vunnel-debian.json"
)


def build(tmp_path: Path, stamp: str, *, gate: bool = False) -> tuple[int, str, Path]:
    """Build twice; ``gate``: with a vulnerability gate (the second build runs in a throwaway data dir
    whose vulnerability database is empty: it must not need one)."""
    (tmp_path / "motd.yaml").write_text(COMPONENT.replace("STAMP", stamp))
    (tmp_path / "tiny.yaml").write_text(RECIPE + ("scan: {fail_on: critical}\n" if gate else ""))
    home = tmp_path / "home"
    if gate:
        kiln("vulndb", "import", str(TRACKER), home=home)
    result = kiln("build", str(tmp_path / "tiny.yaml"), "--check-reproducible", home=home, check=False)
    return result.returncode, " ".join((result.stdout + result.stderr).split()), home


def test_a_deterministic_recipe_is_reproducible(tmp_path: Path) -> None:
    code, output, home = build(tmp_path, "echo done", gate=True)
    assert code == 0, output
    assert "gate passed" in output
    assert re.search(r"reproducible: [2-9] artifact\(s\) bit-identical", output)  # OCI layout + lock file
    assert len(kiln("images", "list", "--json", home=home).json()) == 1


def test_a_time_stamped_file_is_reported_and_nothing_recorded(tmp_path: Path) -> None:
    code, output, home = build(tmp_path, "date +%s%N > /etc/build-time")
    assert code == 1
    assert "not reproducible" in output and "etc/build-time: " in output and "content" in output
    assert kiln("images", "list", "--json", home=home).json() == []
