"""The source-tree check the session runs (tests/conftest.py) sees a stray file and ignores git's
ignored caches; and a pytest run that writes into its tree fails even when every test passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.sourcetree import REPO, unignored_untracked


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_stray_files_are_seen_ignored_ones_are_not(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    assert unignored_untracked(tmp_path) == {".gitignore"}
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__/x.pyc").write_bytes(b"")
    (tmp_path / "stray.json").write_text("{}")
    assert unignored_untracked(tmp_path) == {".gitignore", "stray.json"}
    assert unignored_untracked(tmp_path / "nowhere") is None


def test_a_run_that_writes_into_the_tree_fails(tmp_path: Path) -> None:
    """A copy of the repository's conftest around one passing test that leaves a file behind."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests/sourcetree.py", repo / "tests/sourcetree.py")
    (repo / "tests/__init__.py").write_text("")
    hooks = (REPO / "tests/conftest.py").read_text().split("def pytest_sessionstart", 1)[1]
    (repo / "tests/conftest.py").write_text("import pytest\n\n\ndef pytest_sessionstart" + hooks)
    (repo / "tests/test_litter.py").write_text(
        "from pathlib import Path\n\ndef test_litter():\n"
        "    (Path(__file__).parent / 'litter.txt').write_text('x')\n"
    )
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=repo, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "wrote into the source tree: tests/litter.txt" in done.stdout
