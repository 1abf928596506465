"""A failing component fails the build cleanly: clear message, exit 1, nothing published or left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.sandbox.overlay import mounts_under
from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

FAILING = """\
name: breaks
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Prepare
        action: ExecuteBash
        inputs:
          commands:
            - echo preparing > /etc/breaks-was-here
      - name: Explode
        action: ExecuteBash
        inputs:
          commands:
            - echo "about to fail" >&2
            - sleep 300 &
            - exit 3
"""

RECIPE = """\
name: broken
version: 0.1.0
parent: debian:bookworm
components:
  - path: breaks.yaml
"""


def bwrap_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "bwrap":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("keep", [False, True])
def test_failing_step_fails_the_build_cleanly(tmp_path: Path, keep: bool) -> None:
    (tmp_path / "breaks.yaml").write_text(FAILING)
    (tmp_path / "broken.yaml").write_text(RECIPE)
    home = tmp_path / "home"
    before = set(bwrap_processes())
    args = ["build", str(tmp_path / "broken.yaml"), *(["--keep-rootfs"] if keep else [])]
    result = kiln(*args, home=home, check=False)
    assert result.returncode == 1, result.stderr
    err = " ".join(result.stderr.split())
    assert "recipe broken" in err and "component breaks" in err and "phase build" in err
    assert "Explode" in err and "about to fail" in err
    assert kiln("images", "list", "--json", home=home).json() == []
    builds = kiln("builds", "list", "--json", home=home).json()
    assert [b["status"] for b in builds] == ["failed"]
    assert mounts_under(home) == []
    assert list((home / "tmp").iterdir()) == []
    assert not (home / "images" / "broken").exists() or not any((home / "images" / "broken").iterdir())
    assert set(bwrap_processes()) <= before
    kept = home / "kept"
    if keep:
        roots = list(kept.iterdir())
        assert len(roots) == 1 and (roots[0] / "etc/breaks-was-here").is_file()
        assert str(roots[0]) in " ".join(result.stderr.split()) + result.stdout
    else:
        assert not kept.exists()
    assert Path(builds[0]["log_path"]).exists()
