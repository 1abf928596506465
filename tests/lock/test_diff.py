"""verify_locked: the differences between a lock and a built package set, in words."""

from __future__ import annotations

from kiln.lock import LockedPackage, verify_locked
from tests.lock.conftest import make_lock

A, B = "a" * 64, "b" * 64


def pkg(name: str, version: str, sha: str | None = A, arch: str = "amd64") -> LockedPackage:
    return LockedPackage(name=name, version=version, architecture=arch, sha256=sha)


def test_same_set_has_no_differences() -> None:
    lock = make_lock([pkg("bash", "5.2"), pkg("dash", "0.5")])
    assert verify_locked(lock, [pkg("dash", "0.5"), pkg("bash", "5.2")]) == []


def test_every_kind_of_difference_is_named() -> None:
    lock = make_lock([pkg("bash", "5.2"), pkg("dash", "0.5"), pkg("sed", "4.9"), pkg("grep", "3.8", None)])
    built = [pkg("bash", "5.2.1"), pkg("sed", "4.9", B), pkg("grep", "3.8", B), pkg("nginx", "1.22")]
    assert verify_locked(lock, built) == [
        "version: bash:amd64 is 5.2.1, the lock has 5.2",
        "missing: dash:amd64 0.5 is locked but not installed",
        "extra: nginx:amd64 1.22 is installed but not in the lock",
        f"sha256: sed:amd64 4.9 was installed from a .deb with sha256 {B}, the lock has {A}",
    ]


def test_architectures_are_told_apart() -> None:
    lock = make_lock([pkg("libc6", "2.36"), pkg("libc6", "2.36", arch="i386")])
    assert verify_locked(lock, [pkg("libc6", "2.36")]) == [
        "missing: libc6:i386 2.36 is locked but not installed"
    ]


def test_partial_sets_ignore_what_is_not_there_yet() -> None:
    lock = make_lock([pkg("bash", "5.2"), pkg("nginx", "1.22")])
    assert verify_locked(lock, [pkg("bash", "5.2")], partial=True) == []
    assert verify_locked(lock, [pkg("bash", "5.3")], partial=True) == [
        "version: bash:amd64 is 5.3, the lock has 5.2"
    ]
