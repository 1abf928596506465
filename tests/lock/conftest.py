"""Fixtures for lock tests: a lock of the real bookworm parent, a private package cache, and a
"moved-on archive" (a flat repository with a newer build of one locked package)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.lock import (
    LockedPackage,
    LockFile,
    ParentLock,
    RecipeLock,
    packages_with_hashes,
    prepare_locked_repo,
)
from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.dpkg import deb_filename
from kiln.sandbox.run import run
from kiln.store import Store, file_sha256

BUMPED = "hostname"  # Essential: yes, tiny, no dependencies worth mentioning


def make_lock(packages: list[LockedPackage], epoch: int = 1_700_000_000) -> LockFile:
    return LockFile(
        recipe=RecipeLock(path="examples/recipes/x.yaml", digest="sha256:" + "a" * 64),
        parent=ParentLock(
            image="debian:bookworm",
            mirror="http://deb.debian.org/debian",
            suite="bookworm",
            sources=["deb http://deb.debian.org/debian bookworm main"],
            source_date_epoch=epoch,
            key="k" * 64,
        ),
        packages=packages,
    )


@pytest.fixture
def private_cache(tmp_path: Path, store: Store, bookworm_root: ParentRoot) -> Path:
    """Hard links of the shared package cache's .debs (tests may add or damage files here)."""
    cache = tmp_path / "debs"
    cache.mkdir()
    for deb in store.deb_cache.glob("*.deb"):
        os.link(deb, cache / deb.name)
    return cache


@pytest.fixture
def parent_lock(bookworm_root: ParentRoot, private_cache: Path) -> LockFile:
    """The lock of the real parent: every installed package with its cached .deb's sha256."""
    packages = packages_with_hashes(bookworm_root.rootfs, private_cache)
    return make_lock(packages, bookworm_root.source_date_epoch)


@dataclass(frozen=True)
class MovedArchive:
    """A flat repository holding a newer build of ``package`` than the lock has."""

    root: Path  # bind or copy this; the repository is root/"repo"
    package: str
    locked_version: str
    newer_version: str


def bump_deb(deb: Path, version: str, out_dir: Path) -> Path:
    """Repack a real .deb with another version (dpkg-deb): what an archive update looks like to apt."""
    tree = out_dir / "tree"
    run(["dpkg-deb", "--raw-extract", str(deb), str(tree)])
    control = tree / "DEBIAN/control"
    lines = [f"Version: {version}" if line.startswith("Version:") else line
             for line in control.read_text().splitlines()]  # fmt: skip
    control.write_text("\n".join(lines) + "\n")
    name = deb.name.split("_")[0]
    target = out_dir / f"{name}_{version}_{deb.name.rsplit('_', 1)[1]}"
    run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(target)])
    run(["rm", "-rf", str(tree)])
    return target


@pytest.fixture
def moved_archive(tmp_path: Path, parent_lock: LockFile, private_cache: Path) -> MovedArchive:
    locked = next(p for p in parent_lock.packages if p.name == BUMPED)
    assert locked.filename is not None
    newer = locked.version + "+kilntest1"
    work = tmp_path / "moved-work"
    work.mkdir()
    deb = bump_deb(private_cache / locked.filename, newer, work)
    cache = tmp_path / "moved-cache"
    cache.mkdir()
    filename = deb_filename(locked.name, newer, locked.architecture)
    os.replace(deb, cache / filename)
    entry = locked.model_copy(
        update={"version": newer, "sha256": file_sha256(cache / filename), "filename": filename}
    )
    # The same repository writer, without pins: this is "the archive", not a lock.
    prepare_locked_repo(make_lock([entry]), cache, tmp_path / "moved")
    return MovedArchive(tmp_path / "moved", BUMPED, locked.version, newer)
