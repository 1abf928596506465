"""`make test` writes nothing into the source tree beyond .venv/ and git-ignored tool caches: the
session records the files git does not ignore before the tests and fails if new ones appear."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def unignored_untracked(root: Path = REPO) -> set[str] | None:
    """Untracked files git does not ignore (paths relative to ``root``); None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--others", "--exclude-standard", "-z"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return {name for name in done.stdout.decode(errors="replace").split("\0") if name}
