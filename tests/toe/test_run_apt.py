"""``kiln toe run --target rootfs:`` gives steps apt's lists and archive, as a build's component run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.rootfs.debian import ParentRoot
from kiln.toe.aptcache import root_sources
from tests.conftest import BOOKWORM

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_apt_install_works_in_toe_run_as_in_a_build(rootfs: Path, tmp_path: Path) -> None:
    """The example nginx component, unchanged, with its documented parameter."""
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", "toe", "run", "--target", f"rootfs:{rootfs}",
         "--documents", str(REPO / "examples/components/nginx.yaml"), "--phases", "build,validate",
         "--parameters", "Port=8080", "--log-directory", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "KILN_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Unable to locate package" not in proc.stderr
    assert (rootfs / "usr/sbin/nginx").exists()
    assert "listen 8080 default_server;" in (rootfs / "etc/nginx/sites-available/default").read_text()
    # apt's lists and downloaded packages stay out of the root, as they stay out of a build's layers
    assert not list((rootfs / "var/lib/apt/lists").glob("*_Packages"))
    assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))


def test_a_bootstrapped_root_names_the_sources_its_apt_state_is_kept_under(bookworm_root: ParentRoot) -> None:
    assert root_sources(bookworm_root.rootfs) == BOOKWORM.sources()


SHOW = """\
name: show
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Show
        action: ExecuteBash
        inputs:
          commands: ["apt-cache show hello | grep -q '^Package: hello$'"]
"""


def test_a_root_without_lists_in_the_cache_gets_one_apt_get_update(rootfs: Path, tmp_path: Path) -> None:
    """A private cache has no lists for the root's sources: toe run fetches them once, and the
    verified lists stay in the cache for the next run (none in the root)."""
    (tmp_path / "show.yaml").write_text(SHOW)
    env = {**os.environ, "KILN_HOME": str(tmp_path / "home"), "KILN_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "kiln.cli.main", "toe", "run", "--target", f"rootfs:{rootfs}",
            "--documents", str(tmp_path / "show.yaml"), "--log-directory", str(tmp_path / "logs")]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "apt-get update" in first.stderr
    shared = list((tmp_path / "cache/apt").glob("*/lists/*_InRelease"))
    assert shared, "the verified lists went back into the shared cache"
    assert not list((rootfs / "var/lib/apt/lists").glob("*_Packages"))
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0 and "apt-get update" not in again.stderr
