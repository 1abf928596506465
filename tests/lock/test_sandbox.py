"""A step's sandbox with the lock: apt picks the locked version although the archive moved on,
installs it offline from the lock repository, and nothing of the lock lands in the layer."""

from __future__ import annotations

from pathlib import Path

from kiln.lock import LockFile, prepare_locked_repo, sandbox_lock
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.overlay import overlay
from tests.lock.conftest import MovedArchive

ARCHIVE = "/tmp/.moved-archive"


def _apt(root: Path, script: str, binds: list[Bind], env: dict[str, str] | None = None) -> str:
    options = SandboxOptions(network=False, binds=tuple(binds), env=env or {})
    return run_in_sandbox(root, ["sh", "-euc", script], options, timeout=300).stdout


def _version(root: Path, name: str) -> str:
    return _apt(root, f"dpkg-query -W -f='${{Version}}' {name}", [])


def test_locked_versions_win_offline_and_leave_no_trace(
    tmp_path: Path,
    bookworm_root: ParentRoot,
    parent_lock: LockFile,
    private_cache: Path,
    moved_archive: MovedArchive,
) -> None:
    name, locked, newer = moved_archive.package, moved_archive.locked_version, moved_archive.newer_version
    repo = prepare_locked_repo(parent_lock, private_cache, tmp_path / "lock")
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True)
    binds = [
        Bind(moved_archive.root, ARCHIVE),
        Bind(state / "lists", "/var/lib/apt/lists", readonly=False),
        Bind(state / "cache", "/var/cache/apt", readonly=False),
    ]
    upper = tmp_path / "upper"
    with overlay([bookworm_root.rootfs], upper, tmp_path / "ovl") as root:
        # The image's archive is the moved-on one (offline: no network in these sandboxes).
        sources = f"deb [trusted=yes] file:{ARCHIVE}/repo ./\n"
        (root / "etc/apt/sources.list").write_text(sources)
        # Without the lock, the archive's newer build wins.
        _apt(root, "apt-get update -q && apt-get -y -q upgrade", binds)
        assert _version(root, name) == newer

        lock = sandbox_lock(repo, root)
        with_lock = [*binds, *lock.binds]
        policy = _apt(root, f"apt-get update -q && apt-cache policy {name}", with_lock, lock.env)
        assert f"Candidate: {locked}\n" in policy, policy
        # Installed from the lock repository: the archive no longer has this version.
        _apt(root, f"apt-get install -y -q --allow-downgrades {name}", with_lock, lock.env)
        assert _version(root, name) == locked
        _apt(root, "apt-get -y -q upgrade", with_lock, lock.env)
        assert _version(root, name) == locked
        # The image's own sources are still there for apt (a step can install from them).
        listed = _apt(root, "apt-get indextargets --format '$(URI)' | sort -u", with_lock, lock.env)
        assert ARCHIVE in listed and repo.mount_point in listed
        # The lock is invisible to a sandbox without it.
        assert f"Candidate: {newer}\n" in _apt(root, f"apt-cache policy {name}", binds)

    leftovers = [
        str(p.relative_to(upper)) for p in upper.rglob("*") if "kiln-lock" in p.name or p.name == "tmp"
    ]
    assert leftovers == []
    assert (upper / "etc/apt/sources.list").read_text() == sources  # the test's own edit, nothing more
    assert not (upper / "etc/apt/preferences").exists()
    assert not list((upper / "etc/apt").glob("preferences.d/*"))
    assert not list((upper / "etc/apt").glob("sources.list.d/*"))
