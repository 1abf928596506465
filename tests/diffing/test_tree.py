"""File-level diff on real layer tars (Kiln's own layer writer over a real overlayfs upper dir, with a
whiteout and an opaque directory), and the whole image diff over recorded images."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.catalog import ArtifactRecord, Catalog, ComponentRecord, EvidenceRecord, PackageRecord
from kiln.diffing.images import diff_images
from kiln.diffing.tree import FileChange, diff_trees, layout_layers, trees
from kiln.layers.tar import write_layer
from kiln.outputs.oci import History, ImageConfig, OciImage, write_oci_layout
from kiln.store import Store
from tests.catalog.conftest import new_image
from tests.layers.helpers import SAMPLE_EPOCH, sample_layout


def single(base: Path, tree: Path, **config: object) -> OciImage:
    layer = write_layer(tree, base / "blobs/0.tar.gz", epoch=SAMPLE_EPOCH, kind="rootfs")
    image_config = ImageConfig.model_validate(
        {"created": datetime.fromtimestamp(SAMPLE_EPOCH, UTC), **config}
    )
    return write_oci_layout(base / "oci", [layer], image_config, history=[History("root")], annotations={},
                            tag="t")  # fmt: skip


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    two = sample_layout(base / "two")  # lower (root) + upper: etc/doomed deleted, etc/old.d opaque, ...
    lower = base / "two/trees/lower"
    one = single(base / "one", lower, cmd=("/usr/bin/hello",))
    chmodded = base / "chmodded"
    shutil.copytree(lower, chmodded, symlinks=True)
    (chmodded / "usr/bin/hello").chmod(0o700)
    three = single(base / "three", chmodded, env=("PATH=/usr/bin", "MODE=strict"), exposed_ports=("80/tcp",))
    return {"one": one.path, "two": two.path, "three": three.path}


def changes(a: Path, b: Path) -> list[FileChange]:
    return diff_trees(*trees(layout_layers(a), layout_layers(b)))


def test_whiteouts_opaque_dirs_content_and_modes(layouts: dict[str, Path]) -> None:
    found = {(c.path, c.change): c for c in changes(layouts["one"], layouts["two"])}
    assert sorted(found) == [
        ("etc/doomed", "removed"),
        ("etc/keep", "changed"),
        ("etc/new", "added"),
        ("etc/old.d/one.conf", "removed"),  # hidden by the opaque directory
        ("etc/old.d/three.conf", "added"),
        ("etc/old.d/two.conf", "removed"),
    ]
    keep = found[("etc/keep", "changed")]
    assert (keep.old_size, keep.new_size, keep.fields) == (9, 8, ["size", "sha256"])
    assert found[("etc/new", "added")].new_mode == "0644" and found[("etc/new", "added")].new_size == 6
    assert [(c.path, c.change) for c in changes(layouts["two"], layouts["one"])] == [
        ("etc/doomed", "added"), ("etc/keep", "changed"), ("etc/new", "removed"),
        ("etc/old.d/one.conf", "added"), ("etc/old.d/three.conf", "removed"), ("etc/old.d/two.conf", "added"),
    ]  # fmt: skip
    mode = changes(layouts["one"], layouts["three"])
    assert [(c.path, c.fields, c.old_mode, c.new_mode) for c in mode] == [
        ("usr/bin/hello", ["mode"], "0755", "0700")
    ]


def test_same_layers_read_nothing(layouts: dict[str, Path]) -> None:
    assert trees(layout_layers(layouts["two"]), layout_layers(layouts["two"])) == ({}, {})


def test_image_diff_over_recorded_images(store: Store, layouts: dict[str, Path]) -> None:
    def record(catalog: Catalog, version: str, layout: Path, **fields: object) -> None:
        build = catalog.start_build(recipe_name="app", recipe_version=version, recipe_path="r", log_path="l")
        artifacts = [ArtifactRecord(kind="oci", path=str(layout), digest="sha256:" + "4" * 64, size=1)]
        catalog.finish_build(build, new_image("app", version, artifacts=artifacts, **fields))

    deb = PackageRecord(name="curl", version="7.88.1-10+deb12u8", architecture="amd64")
    with Catalog.open(store.database_url) as catalog:
        record(catalog, "1.0.0", layouts["one"], packages=[deb], size=100)
        newer = deb.model_copy(update={"version": "7.88.1-10+deb12u12"})
        score = EvidenceRecord(kind="compliance-results", path="p", digest="sha256:" + "8" * 64,
                               summary={"score": 91.5})  # fmt: skip
        nginx = ComponentRecord(name="nginx", version="1.2.0", digest="sha256:" + "3" * 64,
                                parameters={"port": "8080"})  # fmt: skip
        update = ComponentRecord(name="update-os", version="1.0.0", digest="sha256:" + "2" * 64)
        record(catalog, "1.1.0", layouts["three"], packages=[newer], size=150, evidence=[score],
               components=[update, nginx])  # fmt: skip
        result = diff_images(catalog, store, "app@1.0.0", "app@1.1.0")
        same = diff_images(catalog, store, "app@1.0.0", "app@1.0.0")
    assert same.empty and same.files is not None and same.files.changes == []
    assert [(c.name, c.old, c.new) for c in result.packages.upgraded] == [
        ("curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u12")
    ]
    assert not (result.packages.added or result.packages.removed or result.packages.downgraded)
    assert [
        (c.name, c.change, [(p.name, p.old, p.new) for p in c.parameters]) for c in result.components
    ] == [("nginx", "changed", [("port", "80", "8080")])]
    assert [(c.name, c.old, c.new) for c in result.config] == [
        ("Cmd", ["/usr/bin/hello"], None),
        ("Env.MODE", None, "strict"),
        ("Env.PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "/usr/bin"),
        ("ExposedPorts.80/tcp", False, True),
    ]
    assert result.compliance_score is not None and result.compliance_score.new == 91.5
    assert result.size is not None and (result.size.old, result.size.new) == (100, 150)
    assert result.files is not None and [c.path for c in result.files.changes] == ["usr/bin/hello"]
    assert result.cves.note is not None and "empty" in result.cves.note


def test_artifacts_gone_are_named_not_a_crash(store: Store, layouts: dict[str, Path]) -> None:
    with Catalog.open(store.database_url) as catalog:
        for version, path in (("1.0.0", layouts["one"]), ("2.0.0", store.home / "images/retired/oci")):
            build = catalog.start_build(
                recipe_name="app", recipe_version=version, recipe_path="r", log_path="l"
            )
            artifacts = [ArtifactRecord(kind="oci", path=str(path), digest="sha256:" + "4" * 64, size=1)]
            catalog.finish_build(build, new_image("app", version, artifacts=artifacts))
        result = diff_images(catalog, store, "app@1.0.0", "app@2.0.0")
    assert result.files is not None and result.files.changes == []
    assert result.files.note == "no OCI layout or root tar on disk for app@2.0.0/1: files not compared"
    assert result.config == []  # nothing to compare it with, not "everything removed"
