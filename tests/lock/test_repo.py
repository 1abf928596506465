"""The lock repository, made from the real parent's cached .debs: verified, indexed, pinned."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from debian import deb822

from kiln.errors import KilnError
from kiln.lock import LockFile, packages_with_hashes, prepare_locked_repo
from kiln.rootfs.debian import ParentRoot
from kiln.store import file_sha256


def test_packages_with_hashes_matches_the_parent_inventory(
    bookworm_root: ParentRoot, private_cache: Path
) -> None:
    packages = packages_with_hashes(bookworm_root.rootfs, private_cache)
    assert len(packages) == len(bookworm_root.debs) > 50
    recorded = {d["name"]: d for d in bookworm_root.debs}
    for package in packages:
        assert package.sha256 is not None, package.name  # every parent .deb is in the cache
        assert package.sha256 == recorded[package.name]["sha256"]
        assert package.version == recorded[package.name]["version"]
    assert next(p for p in packages if p.name == "libc6").source == "glibc"


def test_repo_holds_exactly_the_locked_debs(
    tmp_path: Path, parent_lock: LockFile, private_cache: Path
) -> None:
    repo = prepare_locked_repo(parent_lock, private_cache, tmp_path / "lock")
    debs = sorted(repo.repo.glob("*.deb"))
    assert len(debs) == len(parent_lock.packages)
    assert all(":" not in d.name and "%" not in d.name for d in debs)
    # Hard links into the cache, not copies.
    assert all(d.stat().st_nlink > 1 for d in debs)
    index = list(deb822.Packages.iter_paragraphs((repo.repo / "Packages").read_text(), use_apt_pkg=False))
    by_name = {p["Package"]: p for p in index}
    for package in parent_lock.packages:
        entry = by_name[package.name]
        assert entry["Version"] == package.version
        assert entry["SHA256"] == package.sha256 == file_sha256(repo.repo / entry["Filename"])
        assert entry["Architecture"] == package.architecture
    release = (repo.repo / "Release").read_text()
    assert file_sha256(repo.repo / "Packages") in release
    # Every package pinned to its exact version (epochs included).
    pins = repo.preferences.split("\n\n")
    assert len(pins) == len(parent_lock.packages)
    libc = next(p for p in parent_lock.packages if p.name == "libc6")
    assert f"Package: libc6\nPin: version {libc.version}\nPin-Priority: 1001\n" in repo.preferences
    assert repo.source_line().startswith("deb [trusted=yes] file:/tmp/.kiln-lock-")
    assert repo.unhashed == ()
    # Deterministic: the same lock gives the same index.
    again = prepare_locked_repo(parent_lock, private_cache, tmp_path / "again")
    assert (again.repo / "Packages").read_bytes() == (repo.repo / "Packages").read_bytes()


def test_missing_and_damaged_debs_are_listed(
    tmp_path: Path, parent_lock: LockFile, private_cache: Path
) -> None:
    by_name = {p.name: p for p in parent_lock.packages}
    gone, damaged = by_name["dash"], by_name["sed"]
    assert gone.filename and damaged.filename
    (private_cache / gone.filename).unlink()
    target = private_cache / damaged.filename
    data = target.read_bytes()
    target.unlink()  # break the hard link: never damage the shared cache
    target.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(KilnError) as info:
        prepare_locked_repo(parent_lock, private_cache, tmp_path / "lock")
    message = str(info.value)
    assert f"1 locked .deb(s) missing from the package cache {private_cache}" in message
    assert f"dash {gone.version} (amd64)" in message
    assert "1 cached .deb(s) differ from the lock" in message
    assert f"sed {damaged.version}: lock sha256 {damaged.sha256}, cached .deb " in message
    assert info.value.hint and "package cache" in info.value.hint


def test_a_deb_that_is_not_what_the_lock_says_is_refused(
    tmp_path: Path, parent_lock: LockFile, private_cache: Path
) -> None:
    by_name = {p.name: p for p in parent_lock.packages}
    sed, grep = by_name["sed"], by_name["grep"]
    assert sed.filename and grep.filename
    # The lock's sha256 matches the file, but the file is another package: the index must not lie.
    (private_cache / sed.filename).unlink()
    os.link(private_cache / grep.filename, private_cache / sed.filename)
    lying = sed.model_copy(update={"sha256": grep.sha256})
    lock = parent_lock.model_copy(
        update={"packages": [lying if p.name == "sed" else p for p in parent_lock.packages]}
    )
    expected = f"the .deb is grep {grep.version} amd64, the lock says sed {sed.version} amd64"
    with pytest.raises(KilnError, match=re.escape(expected)):
        prepare_locked_repo(lock, private_cache, tmp_path / "lock")


def test_unhashed_packages_are_pinned_but_not_in_the_repo(
    tmp_path: Path, parent_lock: LockFile, private_cache: Path
) -> None:
    packages = [p.model_copy(update={"sha256": None, "filename": None}) if p.name == "dash" else p
                for p in parent_lock.packages]  # fmt: skip
    lock = parent_lock.model_copy(update={"packages": packages})
    repo = prepare_locked_repo(lock, private_cache, tmp_path / "lock")
    assert [p.name for p in repo.unhashed] == ["dash"]
    assert not list(repo.repo.glob("dash_*.deb"))
    assert "Package: dash\n" in repo.preferences
