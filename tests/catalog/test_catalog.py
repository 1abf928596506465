"""Catalog API: records, numbering, lookups, failures, atomicity, interrupted builds (SQLite, PostgreSQL)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from kiln.catalog import Catalog
from kiln.catalog.models import ComponentRow, EvidenceRow, ImageRow, PackageRow
from kiln.errors import KilnError, NotFound
from kiln.sandbox.run import run
from tests.catalog.conftest import new_image

IMAGE_FIELDS = {
    "name", "version", "build", "digest", "created", "parent", "parent_digest", "recipe_digest",
    "description", "size", "state", "build_id", "components", "artifacts", "evidence",
}  # fmt: skip
BUILD_FIELDS = {
    "id", "recipe_name", "recipe_version", "recipe_path", "status", "started", "finished", "duration",
    "log_path", "error", "image",
}  # fmt: skip


def test_finished_build_records_everything(catalog: Catalog, tmp_path: Path) -> None:
    build_id = catalog.start_build(
        recipe_name="web",
        recipe_version="1.0.0",
        recipe_path="/r/web.yaml",
        log_path=str(tmp_path / "b.jsonl"),
    )
    assert len(build_id) == 32 and int(build_id, 16) >= 0
    running = catalog.get_build(build_id)
    assert running.status == "running" and running.finished is None and running.image is None

    given = new_image()
    image = catalog.finish_build(build_id, given)

    assert image.ref == "web@1.0.0/1"
    assert image.state == "active" and image.build_id == build_id
    assert image.created == given.created and image.created.tzinfo is not None
    assert [c.name for c in image.components] == ["update-os", "nginx"]
    assert image.components[1].parameters == {"port": "80"}
    assert image.artifacts == given.artifacts
    assert image.evidence == given.evidence
    assert catalog.get_image("web") == image

    dumped = image.model_dump(mode="json")
    assert set(dumped) == IMAGE_FIELDS
    assert set(dumped["components"][0]) == {"name", "version", "digest", "parameters"}
    assert set(dumped["artifacts"][0]) == {"kind", "path", "digest", "size"}
    assert set(dumped["evidence"][0]) == {"kind", "path", "digest", "summary"}

    build = catalog.get_build(build_id)
    assert set(build.model_dump(mode="json")) == BUILD_FIELDS
    assert build.status == "succeeded" and build.error is None
    assert build.image == "web@1.0.0/1"
    assert build.finished is not None and build.duration is not None and build.duration >= 0

    with catalog.session() as s:
        packages = s.scalars(select(PackageRow).order_by(PackageRow.name)).all()
        assert [(p.name, p.source, p.source_version) for p in packages] == [
            ("libssl3", "openssl", "3.0.11-1~deb12u2"),
            ("openssl", "openssl", "3.0.11-1~deb12u2"),  # source defaults to the binary package
        ]
        assert s.scalar(select(ImageRow.lock)) == {"debs": {"nginx": "1.22.1-9"}}
    assert catalog.lock("web@1.0.0/1") == {"debs": {"nginx": "1.22.1-9"}}


def test_build_numbers_count_per_name_and_version(catalog: Catalog, record_image: Callable[..., str]) -> None:
    for name, version in [("web", "1.0.0"), ("web", "1.0.0"), ("web", "1.9.0"), ("web", "1.10.0"),
                          ("db", "1.0.0"), ("web", "1.0.0")]:  # fmt: skip
        record_image(name, version)
    refs = [i.ref for i in catalog.list_images()]
    assert refs == ["db@1.0.0/1", "web@1.0.0/1", "web@1.0.0/2", "web@1.0.0/3", "web@1.9.0/1", "web@1.10.0/1"]
    assert [i.ref for i in catalog.list_images("db")] == ["db@1.0.0/1"]
    assert catalog.list_images("nothing") == []
    assert catalog.get_image("web").ref == "web@1.10.0/1"  # semver order, not text order
    assert catalog.get_image("web@1.0.0").ref == "web@1.0.0/3"
    assert catalog.get_image("web@1.0.0/2").ref == "web@1.0.0/2"
    # the kiln: prefix recipes use for image parents is accepted wherever a reference is
    assert catalog.get_image("kiln:web").ref == "web@1.10.0/1"
    assert catalog.get_image("kiln:web@1.0.0/2").ref == "web@1.0.0/2"


def test_unknown_images_say_what_exists(catalog: Catalog, record_image: Callable[..., str]) -> None:
    with pytest.raises(NotFound) as empty:
        catalog.get_image("web")
    assert empty.value.hint == "the catalog has no images yet; build one with: kiln build RECIPE"

    record_image("web", "1.0.0")
    record_image("db", "2.0.0")
    with pytest.raises(NotFound) as unknown:
        catalog.get_image("cache")
    assert str(unknown.value) == "no image cache"
    assert unknown.value.hint == "recorded images: db, web"

    with pytest.raises(NotFound) as version:
        catalog.get_image("web@1.0.0/7")
    assert str(version.value) == "no image web@1.0.0/7"
    assert version.value.hint == "recorded versions of web: 1.0.0/1"

    for bad in ("Web", "web@1.0", "web@1.0.0/0", "web@1.0.0/x", "", "kiln:", "kiln:Web"):
        with pytest.raises(KilnError, match="invalid image reference"):
            catalog.get_image(bad)


def test_failed_build_records_no_image(catalog: Catalog, tmp_path: Path) -> None:
    build_id = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r", log_path="l")
    catalog.fail_build(build_id, "component nginx, phase build, step install: exit code 100")
    build = catalog.get_build(build_id)
    assert build.status == "failed" and build.error is not None and "exit code 100" in build.error
    assert build.finished is not None and build.image is None
    assert catalog.list_images() == []
    with pytest.raises(KilnError, match="is failed; only a running build can finish"):
        catalog.finish_build(build_id, new_image())
    assert catalog.list_images() == []


def test_succeeded_build_cannot_be_failed(catalog: Catalog, record_image: Callable[..., str]) -> None:
    build_id = record_image()
    with pytest.raises(KilnError, match="already succeeded"):
        catalog.fail_build(build_id, "late")
    assert catalog.get_build(build_id).status == "succeeded"


def test_builds_by_prefix_and_listing(catalog: Catalog) -> None:
    ids = [
        catalog.start_build(recipe_name=f"r{i}", recipe_version="1.0.0", recipe_path="p", log_path="l")
        for i in range(17)
    ]
    assert catalog.get_build(ids[3][:8]).id == ids[3]
    assert catalog.get_build(ids[3].upper()).id == ids[3]
    # 17 ids over 16 hex digits: some first digit is shared, so that prefix is ambiguous.
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(NotFound, match="ambiguous"):
        catalog.get_build(shared)
    for bad in ("zz", "", "0" * 33):
        with pytest.raises(NotFound):
            catalog.get_build(bad)

    listed = catalog.list_builds()
    assert [b.id for b in listed] == ids[::-1]  # newest first
    assert len(catalog.list_builds(limit=5)) == 5


def test_finish_build_is_one_transaction(catalog: Catalog, tmp_path: Path) -> None:
    """A failure while inserting the last rows (evidence) leaves no image, component or artifact row."""
    build_id = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r", log_path="l")

    def explode(*_args: Any) -> None:
        raise RuntimeError("disk full while writing evidence")

    event.listen(EvidenceRow, "before_insert", explode)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            catalog.finish_build(build_id, new_image())
    finally:
        event.remove(EvidenceRow, "before_insert", explode)

    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(ImageRow)) == 0
        assert s.scalar(select(func.count()).select_from(ComponentRow)) == 0
        assert s.scalar(select(func.count()).select_from(PackageRow)) == 0
    assert catalog.get_build(build_id).status == "running"
    # The same build can still finish, and takes build number 1.
    assert catalog.finish_build(build_id, new_image()).build == 1


def test_concurrent_finishes_get_distinct_numbers(catalog_url: str, catalog: Catalog) -> None:
    builds = [
        catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r", log_path="l")
        for _ in range(6)
    ]
    errors: list[BaseException] = []

    def finish(build_id: str) -> None:
        try:
            with Catalog.open(catalog_url) as own:  # one catalog per worker, as separate processes would
                own.finish_build(build_id, new_image())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(b,)) for b in builds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(i.build for i in catalog.list_images("web")) == [1, 2, 3, 4, 5, 6]


def test_builds_of_dead_processes_are_marked_interrupted(
    catalog_url: str, catalog: Catalog, tmp_path: Path
) -> None:
    log = tmp_path / "killed.jsonl"
    log.write_text('{"kind": "start", "message": "build web"}\n')
    script = (
        "import sys; from kiln.catalog import Catalog; c = Catalog.open(sys.argv[1]); "
        "print(c.start_build(recipe_name='web', recipe_version='1.0.0', recipe_path='r', "
        "log_path=sys.argv[2]))"
    )
    dead = run([sys.executable, "-c", script, catalog_url, str(log)], timeout=120).stdout.strip()
    mine = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="r", log_path="l")
    assert catalog.get_build(dead).status == "running"  # nobody has looked yet

    with Catalog.open(catalog_url) as reopened:
        interrupted = reopened.get_build(dead)
        assert interrupted.status == "failed"
        assert interrupted.error is not None and interrupted.error.startswith("interrupted:")
        assert interrupted.finished is not None and interrupted.finished >= interrupted.started
        assert reopened.get_build(mine).status == "running"  # this process is alive


def test_records_validate_their_input() -> None:
    from pydantic import ValidationError

    from kiln.catalog import ComponentRecord

    assert ComponentRecord(name="n", version="1", digest="d", parameters={"Port": 80}).parameters == {
        "Port": "80"
    }
    for bad in ({"version": "1.0"}, {"version": "v1.0.0"}, {"name": "Web"}, {"name": "-web"}):
        with pytest.raises(ValidationError):
            new_image(**bad)
    naive = new_image(created=datetime(2026, 1, 1, 12, 0))  # naive times are taken as UTC
    assert naive.created.tzinfo is not None and naive.created.hour == 12
