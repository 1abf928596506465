"""Serving files of the data directory without letting a request name any other file."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from kiln.api.problems import ApiError
from kiln.errors import KilnError
from kiln.models import Artifact
from kiln.store import Store

MAX_LISTED = 10_000


def artifact_location(store: Store, artifact: Artifact) -> Path:
    """Where a recorded artifact is, refused unless it resolves inside the data directory."""
    try:
        path = store.artifact_file(artifact)
    except KilnError as exc:
        raise ApiError(404, f"artifact {artifact.path}: {exc.message}") from None
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ApiError(404, f"artifact {artifact.path} is no longer in the data directory") from None
    if not real.is_relative_to(store.home.resolve()):
        raise ApiError(404, f"artifact {artifact.path} is outside the data directory")
    return real


def file_below(base: Path, relative: str) -> Path:
    """The regular file ``relative`` names below directory ``base``: no absolute paths, no ``..``,
    no symlink leaving ``base`` (the resolved path must stay below it)."""
    parts = PurePosixPath(relative).parts
    if not relative or "\x00" in relative or relative.startswith("/") or ".." in parts or "\\" in relative:
        raise ApiError(404, f"no file {relative!r} in this artifact")
    try:
        real = (base / Path(*parts)).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise ApiError(404, f"no file {relative!r} in this artifact") from None
    if not real.is_relative_to(base) or not stat.S_ISREG(real.stat().st_mode):
        raise ApiError(404, f"no file {relative!r} in this artifact")
    return real


def list_files(base: Path) -> list[tuple[str, int]]:
    """Regular files below ``base`` (relative paths, sizes), sorted; symlinks are not followed."""
    found: list[tuple[str, int]] = []
    for root, dirs, names in os.walk(base):
        dirs.sort()
        for name in sorted(names):
            full = Path(root) / name
            info = full.lstat()
            if stat.S_ISREG(info.st_mode):
                found.append((full.relative_to(base).as_posix(), info.st_size))
                if len(found) >= MAX_LISTED:
                    return found
    return found
