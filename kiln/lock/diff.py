"""Comparing a built package set with its lock, in words a user can act on."""

from __future__ import annotations

from collections.abc import Iterable

from kiln.lock.model import LockedPackage, LockFile


def verify_locked(lock: LockFile, packages: Iterable[LockedPackage], *, partial: bool = False) -> list[str]:
    """Differences between the locked and the built package set (empty: the same set).

    A sha256 is compared only where both sides have one (a package installed from outside the
    package cache has none). ``partial``: ``packages`` is part of the image (a cached parent root
    before its components ran), so locked packages it lacks are not differences.
    """
    locked = {p.ident: p for p in lock.packages}
    built = {p.ident: p for p in packages}
    differences = []
    for ident in sorted(locked.keys() | built.keys()):
        want, got = locked.get(ident), built.get(ident)
        if got is None:
            assert want is not None
            if partial:
                continue
            differences.append(f"missing: {ident} {want.version} is locked but not installed")
        elif want is None:
            differences.append(f"extra: {ident} {got.version} is installed but not in the lock")
        elif want.version != got.version:
            differences.append(f"version: {ident} is {got.version}, the lock has {want.version}")
        elif want.sha256 and got.sha256 and want.sha256 != got.sha256:
            differences.append(
                f"sha256: {ident} {got.version} was installed from a .deb with sha256 {got.sha256}, "
                f"the lock has {want.sha256}"
            )
    return differences
