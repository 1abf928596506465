"""The round trip a locked build makes, at step level: install packages in a step, lock the result,
then repeat the step with the lock on a fresh root, offline, and get the same package set."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.lock import packages_with_hashes, prepare_locked_repo, sandbox_lock, verify_locked
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.overlay import overlay
from tests.lock.conftest import make_lock

STEP = "apt-get update -q && apt-get install -y -q --no-install-recommends curl"


def _apt_state(base: Path, deb_cache: Path) -> list[Bind]:
    for sub in ("lists/partial", "cache"):
        (base / sub).mkdir(parents=True)
    return [
        Bind(base / "lists", "/var/lib/apt/lists", readonly=False),
        Bind(base / "cache", "/var/cache/apt", readonly=False),
        Bind(deb_cache, "/var/cache/apt/archives", readonly=False),
    ]


@pytest.mark.e2e
def test_a_locked_step_reinstalls_the_same_set_offline(
    tmp_path: Path, bookworm_root: ParentRoot, private_cache: Path
) -> None:
    (private_cache / "partial").mkdir(exist_ok=True)
    with overlay([bookworm_root.rootfs], tmp_path / "first", tmp_path / "ovl1") as root:
        options = SandboxOptions(binds=tuple(_apt_state(tmp_path / "apt1", private_cache)))
        run_in_sandbox(root, ["sh", "-c", STEP], options, timeout=600)
        lock = make_lock(packages_with_hashes(root, private_cache), bookworm_root.source_date_epoch)
    assert any(p.name == "curl" for p in lock.packages)
    assert all(p.sha256 for p in lock.packages)  # every .deb went through the package cache

    repo = prepare_locked_repo(lock, private_cache, tmp_path / "lock")
    with overlay([bookworm_root.rootfs], tmp_path / "second", tmp_path / "ovl2") as root:
        locked = sandbox_lock(repo, root)
        # No network and no archive lists (apt-get update only warns about the archive, exit 0):
        # everything comes from the lock repository.
        binds = (*_apt_state(tmp_path / "apt2", private_cache), *locked.binds)
        options = SandboxOptions(network=False, binds=binds, env=locked.env)
        run_in_sandbox(root, ["sh", "-c", STEP], options, timeout=600)
        assert verify_locked(lock, packages_with_hashes(root, private_cache)) == []
