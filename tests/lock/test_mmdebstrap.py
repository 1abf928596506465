"""A real mmdebstrap bootstrap with the lock: exactly the locked package set, although the archive
offers a newer build of an essential package, and no trace of the lock in the image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kiln.lock import LockFile, mmdebstrap_lock_args, packages_with_hashes, prepare_locked_repo, verify_locked
from kiln.rootfs.debian import ParentRoot, drop_host_state
from kiln.sandbox.run import run
from tests.conftest import BOOKWORM
from tests.lock.conftest import MovedArchive

MOVED = "/etc/apt/sources.list.d/moved-archive.list"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.e2e
def test_mmdebstrap_installs_exactly_the_lock(
    tmp_path: Path,
    bookworm_root: ParentRoot,
    parent_lock: LockFile,
    private_cache: Path,
    moved_archive: MovedArchive,
) -> None:
    repo = prepare_locked_repo(parent_lock, private_cache, tmp_path / "lock")
    (tmp_path / "moved.list").write_text(f"deb [trusted=yes] copy:{moved_archive.root}/repo ./\n")
    target = tmp_path / "rootfs"
    argv = [
        "mmdebstrap", "--variant=minbase", "--architectures=amd64", "--mode=root", "--format=directory",
        "--skip=essential/unlink", "--skip=cleanup/apt/cache", '--aptopt=Acquire::Retries "3"',
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
        f"--setup-hook=sync-in {private_cache} /var/cache/apt/archives",
        # The archive moved on: a newer build of an essential package is offered (without the lock
        # args, mmdebstrap installs that newer build: checked by hand, it is what apt prefers).
        f'--setup-hook=mkdir -p "$1"/etc/apt/sources.list.d && cp {tmp_path}/moved.list "$1"{MOVED}',
        f"--customize-hook=sync-out /var/cache/apt/archives {private_cache}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin',
        '--customize-hook=: > "$1"/etc/resolv.conf',
        '--customize-hook=echo localhost > "$1"/etc/hostname',
        f'--customize-hook=rm -f "$1"{MOVED}',
        *mmdebstrap_lock_args(repo),
        "bookworm", str(target), *BOOKWORM.sources(),
    ]  # fmt: skip
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(bookworm_root.source_date_epoch)}
    try:
        run(argv, env=env, timeout=600)
        drop_host_state(target)  # as ensure_parent does after every bootstrap
        built = packages_with_hashes(target, private_cache)
        assert verify_locked(parent_lock, built) == []
        assert (
            next(p.version for p in built if p.name == moved_archive.package) == moved_archive.locked_version
        )
        # Nothing of the lock is left: same files as the parent made without a lock, same sources.
        assert _tree(target) ^ _tree(bookworm_root.rootfs) == set()
        assert (target / "etc/apt/sources.list").read_text() == (
            bookworm_root.rootfs / "etc/apt/sources.list"
        ).read_text()
        assert not list((target / "var/lib/apt/lists").glob("*kiln*"))
    finally:
        shutil.rmtree(target, ignore_errors=True)
