"""Directory destination and the distribution job itself (records, idempotence, retries), through
the real CLI on a real catalogued image."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from kiln.distribute.base import Destination, PreflightFailed, PublishContext
from kiln.distribute.spec import DirectoryTarget
from tests.distribute.conftest import Built, kiln, write_targets

pytestmark = pytest.mark.e2e


def test_directory_publish_is_complete_verifiable_and_idempotent(built: Built, tmp_path: Path) -> None:
    config = write_targets(
        tmp_path / "targets.yaml", f"  - {{name: dir-a, type: directory, path: {tmp_path}/out}}\n"
    )
    first = kiln("distribute", built.ref, "--config", str(config), "--json", home=built.home)
    (outcome,) = json.loads(first.stdout)["targets"]
    assert outcome["result"] == "published"
    dest = tmp_path / "out" / "tiny-dist" / f"1.2.3-{built.image['build']}"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["image"]["digest"] == built.image["digest"]
    assert {e["kind"] for e in manifest["evidence"]} >= {"sbom-spdx", "sbom-cyclonedx", "provenance-signed"}
    for e in manifest["evidence"]:  # evidence files are the catalog's, byte for byte
        assert "sha256:" + hashlib.sha256((dest / e["path"]).read_bytes()).hexdigest() == e["digest"]
    sums = (dest / "SHA256SUMS").read_text().splitlines()
    assert any(line.endswith("  manifest.json") for line in sums)
    for line in sums:  # what `sha256sum -c SHA256SUMS` does
        digest, name = line.split("  ", 1)
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest, name
    index = json.loads((dest / "oci/index.json").read_text())
    assert index["manifests"][0]["digest"] == built.image["digest"]
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temporary left

    mtime = (dest / "manifest.json").stat().st_mtime_ns
    again = kiln("distribute", built.ref, "--config", str(config), home=built.home)
    assert "unchanged" in again.stdout and "already published, nothing changed" in again.stdout
    assert (dest / "manifest.json").stat().st_mtime_ns == mtime

    history = kiln("distributions", built.ref, "--json", home=built.home).stdout
    mine = [r for r in json.loads(history) if r["target"] == "dir-a"]
    assert [r["status"] for r in mine] == ["succeeded"]  # the no-op re-run recorded nothing
    assert mine[0]["external"]["path"] == str(dest) and mine[0]["finished"] is not None

    kiln("distribute", built.ref, "--config", str(config), "--unpublish", home=built.home)
    assert not dest.exists()


def test_failure_is_recorded_and_retry_failed_publishes_only_that_target(
    built: Built, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    config = write_targets(
        tmp_path / "targets.yaml",
        f"  - {{name: dir-ok, type: directory, path: {tmp_path}/ok}}\n"
        f"  - {{name: dir-flaky, type: directory, path: {blocked}}}\n",
    )
    # Injected failure after preflight (the target folder is writable): the image's name is a file.
    blocked.mkdir()
    (blocked / "tiny-dist").write_text("in the way")
    first = kiln("distribute", built.ref, "--config", str(config), "--json", code=1, home=built.home)
    results = {o["target"]: o["result"] for o in json.loads(first.stdout)["targets"]}
    assert results == {"dir-ok": "published", "dir-flaky": "failed"}
    ok_manifest = tmp_path / "ok/tiny-dist" / f"1.2.3-{built.image['build']}" / "manifest.json"
    mtime = ok_manifest.stat().st_mtime_ns

    (blocked / "tiny-dist").unlink()
    retry = kiln(
        "distribute", built.ref, "--config", str(config), "--retry-failed", "--json", home=built.home
    )
    results = {o["target"]: o["result"] for o in json.loads(retry.stdout)["targets"]}
    assert results == {"dir-ok": "unchanged", "dir-flaky": "published"}
    assert ok_manifest.stat().st_mtime_ns == mtime
    with sqlite3.connect(built.home / "catalog.db") as db:
        rows = db.execute(
            "SELECT status, error FROM distributions WHERE target = 'dir-flaky' ORDER BY started"
        ).fetchall()
    assert [r[0] for r in rows] == ["failed", "succeeded"] and rows[0][1]


def test_preflight_fails_before_anything_is_published(built: Built, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    config = write_targets(
        tmp_path / "targets.yaml",
        f"  - {{name: dir-first, type: directory, path: {tmp_path}/first}}\n"
        f"  - {{name: dir-ro, type: directory, path: {tmp_path}/a-file/sub}}\n",
    )
    result = kiln("distribute", built.ref, "--config", str(config), code=1, home=built.home)
    assert "preflight failed, nothing was published" in result.stderr and "dir-ro" in result.stderr
    assert not (tmp_path / "first").exists()


def test_bad_target_is_a_validation_error_with_its_position(built: Built, tmp_path: Path) -> None:
    config = write_targets(tmp_path / "targets.yaml", "  - {name: x, type: directory, path: /tmp, colour: red}\n"
                           "  - {name: x, type: ftp}\n")  # fmt: skip
    result = kiln("distribute", built.ref, "--config", str(config), code=2, home=built.home)
    assert "targets.yaml:2:" in result.stderr and "colour" in result.stderr
    assert "targets.yaml:3:" in result.stderr


def test_registration_fails_loudly_on_a_duplicate_kind() -> None:
    import kiln.distribute.destinations  # noqa: F401

    assert {"directory"} <= set(Destination.registry)
    with pytest.raises(TypeError, match="registered twice"):

        class Again(Destination):
            kind = "directory"
            Spec = DirectoryTarget

            def preflight(self) -> None: ...
            def publish(self) -> dict[str, object]:
                return {}

            def unpublish(self, external: dict[str, object]) -> list[str]:
                return []

    assert PublishContext and PreflightFailed


def test_disabled_images_are_not_distributed(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from kiln.catalog import Catalog, NewImage
    from kiln.models import Artifact

    home = tmp_path / "home"
    data = tmp_path / "image.tar"
    data.write_bytes(b"not much")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: off\nversion: 1.0.0\ndistribution:\n  - {{name: d, type: directory, path: {tmp_path}/out}}\n"
    )
    with Catalog.open(f"sqlite:///{home}/catalog.db") as catalog:
        build = catalog.start_build(recipe_name="off", recipe_version="1.0.0", recipe_path=str(recipe),
                                    log_path=str(tmp_path / "log"))  # fmt: skip
        artifact = Artifact(kind="rootfs-tar", path=str(data), size=8,
                            digest="sha256:" + hashlib.sha256(b"not much").hexdigest())  # fmt: skip
        catalog.finish_build(build, NewImage(name="off", version="1.0.0", digest="sha256:" + "1" * 64,
                                             created=datetime.now(UTC), parent="debian:bookworm",
                                             artifacts=[artifact]))  # fmt: skip
    kiln("distribute", "off", "--json", home=home)  # targets from the recorded recipe
    assert (tmp_path / "out/off/1.0.0-1/image.tar").read_bytes() == b"not much"
    with sqlite3.connect(home / "catalog.db") as db:
        db.execute("UPDATE images SET state = 'disabled'")
    refused = kiln("distribute", "off", code=1, home=home)
    assert "disabled images are not distributed" in refused.stderr
