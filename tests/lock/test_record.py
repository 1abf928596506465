"""A lock from a build's recorded inputs, and whether a lock fits the build about to run."""

from __future__ import annotations

from pathlib import Path

from kiln.lock import LockedPackage, lock_mismatches, lockfile_from_build, read_lockfile, write_lockfile
from tests.conftest import BOOKWORM

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def build_data() -> dict[str, object]:
    # The shape kiln.build.orchestrate.lock_data(ctx) records today.
    return {
        "recipe": {"path": "/r/web.yaml", "digest": D1},
        "parent": {"image": "debian:bookworm", "key": BOOKWORM.key, "sources": BOOKWORM.sources(),
                   "source_date_epoch": 1700000000, "debs": []},
        "components": [
            {"role": "component", "name": "web", "digest": D1, "parameters": {"port": "80"}, "phases": ["build"],
             "document": "components/component-00.yaml"},
            {"role": "test", "name": "smoke", "digest": D2, "parameters": {}, "phases": ["test"], "document": "x"},
        ],
        "layers": ["k1"],
    }  # fmt: skip


def test_lock_from_build_data_round_trips(tmp_path: Path) -> None:
    packages = [
        LockedPackage(
            name="bash", version="5.2", architecture="amd64", sha256="a" * 64, filename="bash_5.2_amd64.deb"
        )
    ]
    lock = lockfile_from_build(build_data(), packages)
    assert (lock.parent.mirror, lock.parent.suite) == ("http://deb.debian.org/debian", "bookworm")
    assert [(c.role, c.name, c.parameters) for c in lock.components] == [
        ("component", "web", {"port": "80"}),
        ("test", "smoke", {}),
    ]
    write_lockfile(tmp_path / "lock.json", lock)
    assert read_lockfile(tmp_path / "lock.json") == lock


def test_mismatches_name_the_parent_and_components() -> None:
    lock = lockfile_from_build(build_data(), [])
    assert lock_mismatches(lock, parent_key=BOOKWORM.key, components=[("web", D1)]) == []
    problems = lock_mismatches(lock, parent_key="f" * 64, components=[("web", D2), ("extra", D1)])
    assert problems[0].startswith("the parent differs from the locked one")
    assert (
        problems[1]
        == "component 1: the recipe has web (sha256:222222222222), the lock has web (sha256:111111111111)"
    )
    assert problems[2] == "component 2: the recipe has extra (sha256:111111111111), the lock has none"
