"""From a build's recorded inputs to a lock file, and back: does a lock fit the build about to run?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kiln.lock.model import ComponentLock, LockedPackage, LockFile, ParentLock, RecipeLock
from kiln.rootfs.archive import SuiteState


def mirror_and_suite(sources: list[str]) -> tuple[str | None, str | None]:
    """Mirror and suite of the first one-line source (``deb [options] URI SUITE AREAS...``)."""
    for line in sources:
        words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
        if len(words) >= 3 and words[0] == "deb":
            return words[1], words[2]
    return None, None


def lockfile_from_build(data: Mapping[str, Any], packages: Iterable[LockedPackage]) -> LockFile:
    """The lock of a build from its recorded inputs (``kiln.build.orchestrate.lock_data``) and the
    final image's packages (:func:`kiln.lock.packages_with_hashes` on the merged root)."""
    parent = data["parent"]
    sources = list(parent.get("sources", []))
    mirror, suite = mirror_and_suite(sources)
    return LockFile(
        recipe=RecipeLock(path=data["recipe"]["path"], digest=data["recipe"]["digest"]),
        parent=ParentLock(
            image=parent["image"],
            mirror=mirror,
            suite=suite,
            sources=sources,
            snapshot=parent.get("snapshot"),
            source_date_epoch=parent["source_date_epoch"],
            key=parent["key"],
            digest=parent.get("digest"),
            ref=parent.get("ref"),
            archive=[SuiteState.model_validate(s) for s in parent.get("archive") or []],
        ),
        packages=list(packages),
        components=[
            ComponentLock(
                name=c["name"],
                version=c.get("version"),
                digest=c["digest"],
                parameters=c.get("parameters") or {},
                role=c.get("role", "component"),
            )
            for c in data.get("components", [])
        ],
    )


def lock_mismatches(
    lock: LockFile, *, parent_key: str, components: Iterable[tuple[str, str]] = ()
) -> list[str]:
    """Why ``lock`` cannot reproduce this build: another parent definition, or other component
    documents (``components``: (name, digest) in recipe order). Empty: the lock fits."""
    problems = []
    if lock.parent.key != parent_key:
        problems.append(
            f"the parent differs from the locked one (mirror, suite, variant, packages or architecture): "
            f"lock {lock.parent.key[:12]}, recipe {parent_key[:12]}"
        )
    locked = [(c.name, c.digest) for c in lock.components if c.role == "component"]
    wanted = list(components)
    if wanted and locked != wanted:
        for index in range(max(len(locked), len(wanted))):
            have = locked[index] if index < len(locked) else None
            want = wanted[index] if index < len(wanted) else None
            if have != want:
                problems.append(
                    f"component {index + 1}: the recipe has {_named(want)}, the lock has {_named(have)}"
                )
    return problems


def _named(item: tuple[str, str] | None) -> str:
    return "none" if item is None else f"{item[0]} ({item[1][:19]})"
