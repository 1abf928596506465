"""Image parents before and at the start of a build: a disabled parent stops the build before it is
recorded, a deprecated one warns, the parent's layers are reused as they are, and every layer key
chains from the parent's digest. Real OCI layouts, catalog and unpacking; no bootstrap."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from kiln.build import run_build
from kiln.build.imageparent import image_layer_key, inherit_config
from kiln.build.keys import component_layer_key
from kiln.build.resolved import resolve_parent_image
from kiln.catalog import ArtifactRecord, Catalog, NewImage
from kiln.catalog.models import ImageRow
from kiln.catalog.parents import ParentUnavailable
from kiln.layers.tar import write_layer
from kiln.models import BuildOptions, BuildRequest, RecipeSource
from kiln.monitor import ListMonitor
from kiln.outputs.layout import open_layout
from kiln.outputs.oci import History, ImageConfig, write_oci_layout
from kiln.recipes.loader import load_recipe
from kiln.recipes.model import ImageConfigSpec
from kiln.rootfs.imageparent import image_root, layer_blobs
from kiln.settings import Settings
from kiln.store import Store
from tests.documents import create_file_component

KILN = Path(__file__).resolve().parents[2] / ".venv/bin/kiln"
EPOCH = 1_767_225_600
RECIPE = """\
name: child
version: 1.0.0
parent:
  image: {parent}
components:
  - path: mark.yaml
outputs: [{{type: oci}}]
"""
MARK = create_file_component("child", name="mark", path="/etc/child")


def tiny_layout(dest: Path, work: Path, files: dict[str, str]) -> str:
    """A one-layer OCI layout holding ``files``; returns its manifest digest."""
    tree = work / "tree"
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    blob = write_layer(tree, work / "layer.tar.gz", epoch=EPOCH, kind="rootfs")
    config = ImageConfig(created=datetime.fromtimestamp(EPOCH, UTC), env=("PATH=/usr/bin:/bin", "GREETING=hi"),
                         cmd=("serve", "--port", "8080"), exposed_ports=("8080/tcp",), labels={"team": "base"})  # fmt: skip
    image = write_oci_layout(dest, [blob], config, history=[History(created_by="test", comment="base files")],
                             annotations={}, tag="1.0.0")  # fmt: skip
    return image.manifest_digest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data dir whose catalog holds base@1.0.0/1 with a real (tiny) OCI layout."""
    home = tmp_path / "home"
    store = Store.open(home, Settings())
    layout = home / "images/base/oci"
    manifest = tiny_layout(layout, tmp_path, {"etc/os-release": "ID=debian\n", "etc/base": "base\n"})
    with Catalog.open(store.database_url) as catalog:
        build = catalog.start_build(recipe_name="base", recipe_version="1.0.0", recipe_path="base.yaml",
                                    log_path=str(tmp_path / "log"))  # fmt: skip
        catalog.finish_build(build, NewImage(
            name="base", version="1.0.0", digest=manifest, created=datetime.now(UTC), parent="debian:bookworm",
            artifacts=[ArtifactRecord(kind="oci", path=str(layout), digest=manifest, size=1)],
            lock={"parent": {"image": "debian:bookworm", "sources": ["deb http://deb.debian.org/debian bookworm main"],
                             "source_date_epoch": EPOCH, "debs": []}},
        ))  # fmt: skip
    return home


def child_recipe(folder: Path, parent: str) -> Path:
    (folder / "mark.yaml").write_text(MARK)
    path = folder / "child.yaml"
    path.write_text(RECIPE.format(parent=parent))
    return path


def set_state(home: Path, state: str) -> None:
    with (
        Catalog.open(Store.open(home, Settings()).database_url) as catalog,
        catalog.session(write=True) as s,
        s.begin(),
    ):
        s.execute(update(ImageRow).where(ImageRow.name == "base").values(state=state))


@pytest.mark.parametrize("state", ["disabled", "retired"])
def test_an_unusable_parent_stops_the_build_before_it_is_recorded(
    home: Path, tmp_path: Path, state: str
) -> None:
    set_state(home, state)
    request = BuildRequest(recipe=RecipeSource.read(child_recipe(tmp_path, "kiln:base@1.x")), data_dir=home)
    with pytest.raises(ParentUnavailable, match=f"parent kiln:base@1.x: base@1.0.0/1 is {state}"):
        run_build(request, monitor=ListMonitor())
    with Catalog.open(Store.open(home, Settings()).database_url) as catalog:
        assert [b.recipe_name for b in catalog.list_builds()] == ["base"]  # no build of child began


def test_no_matching_version_lists_the_recorded_ones(home: Path, tmp_path: Path) -> None:
    request = BuildRequest(recipe=RecipeSource.read(child_recipe(tmp_path, "kiln:base@2.x")), data_dir=home)
    with pytest.raises(ParentUnavailable, match=r"no version of base matches 2\.x") as err:
        run_build(request, monitor=ListMonitor())
    assert err.value.hint == "recorded versions of base: 1.0.0/1"


def test_a_deprecated_parent_resolves_with_a_warning(home: Path, tmp_path: Path) -> None:
    set_state(home, "deprecated")
    loaded = load_recipe(child_recipe(tmp_path, "kiln:base@1.0.0"))
    store = Store.open(home, Settings())
    with Catalog.open(store.database_url) as catalog:
        resolved = resolve_parent_image(loaded, catalog, store, ListMonitor())
    assert resolved is not None
    assert (resolved.ref, resolved.state, resolved.name) == (
        "base@1.0.0/1",
        "deprecated",
        "kiln:base@1.0.0/1",
    )
    assert resolved.warnings == [
        "parent kiln:base@1.0.0 resolves to base@1.0.0/1, which is deprecated: plan a move to a newer parent"
    ]
    assert resolved.lock_entry() == {"kind": "kiln", "ref": "base@1.0.0/1", "digest": resolved.digest,
                                     "constraint": "kiln:base@1.0.0"}  # fmt: skip


def test_an_oci_layout_parent_is_unpacked_once_and_its_blobs_reused(home: Path, tmp_path: Path) -> None:
    loaded = load_recipe(child_recipe(tmp_path, "oci-layout:home/images/base/oci:1.0.0"))
    store = Store.open(home, Settings())
    with Catalog.open(store.database_url) as catalog:
        resolved = resolve_parent_image(loaded, catalog, store, ListMonitor())
    assert resolved is not None and resolved.kind == "oci-layout" and resolved.ref is None
    image = open_layout(resolved.layout, resolved.tag)
    first = image_root(store, image, ListMonitor())
    try:
        assert (first.rootfs / "etc/base").read_text() == "base\n" and not first.cached
        again = image_root(store, image, ListMonitor())
        again.release()
        assert again.cached and again.rootfs == first.rootfs
    finally:
        first.release()
    [blob] = layer_blobs(image)
    assert blob.path == resolved.layout / "blobs/sha256" / blob.digest.removeprefix("sha256:")
    assert blob.diff_id == image.diff_ids[0]


def test_layer_keys_chain_from_the_parent_digest(tmp_path: Path) -> None:
    loaded = load_recipe(child_recipe(tmp_path, "kiln:base@1.x"))
    [component] = loaded.components
    settings = loaded.recipe.settings
    one, two = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert image_layer_key(one, 0) != image_layer_key(two, 0) != image_layer_key(two, 1)
    keys = {component_layer_key(image_layer_key(d, 0), component, settings, EPOCH) for d in (one, two)}
    assert len(keys) == 2  # a new parent version: the child's layers are rebuilt


def test_a_child_builds_on_a_deprecated_parent_with_a_warning_and_its_config(
    home: Path, tmp_path: Path
) -> None:
    """A whole build on a (tiny, non-Debian) catalogued parent: the warning reaches the monitor, the
    child's image starts with the parent's layer and inherits its runtime config."""
    set_state(home, "deprecated")
    monitor = ListMonitor()
    request = BuildRequest(recipe=RecipeSource.read(child_recipe(tmp_path, "kiln:base@1.x")), data_dir=home)
    result = run_build(request, monitor=monitor)
    warnings = [e.message for e in monitor.events if e.kind == "warning"]
    assert any("base@1.0.0/1, which is deprecated" in w for w in warnings)
    base = Catalog.open(Store.open(home, Settings()).database_url)
    try:
        parent = base.get_image("base")
    finally:
        base.close()
    assert (result.image.parent, result.image.parent_digest) == ("kiln:base@1.x", parent.digest)
    child = open_layout(Path(next(a.path for a in result.image.artifacts if a.kind == "oci")))
    assert child.layers[0] == open_layout(Path(parent.artifacts[0].path)).layers[0] and len(child.layers) == 2
    assert child.manifest["annotations"]["org.opencontainers.image.base.digest"] == parent.digest
    config = child.config["config"]
    assert config["Cmd"] == ["serve", "--port", "8080"] and config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Env"] == ["PATH=/usr/bin:/bin", "GREETING=hi"] and config["Labels"] == {"team": "base"}


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ({}, {"env": {"A": "1"}, "entrypoint": ["/init"], "cmd": ["run"], "user": "app", "exposed_ports": ["80/tcp"]}),
        ({"env": {"B": "2"}, "cmd": ["debug"]},
         {"env": {"A": "1", "B": "2"}, "entrypoint": ["/init"], "cmd": ["debug"]}),
        ({"entrypoint": ["/other"]}, {"entrypoint": ["/other"], "cmd": None}),  # Docker drops the parent's cmd
        ({"user": "root", "exposed_ports": ["443"]}, {"user": "root", "exposed_ports": ["443", "80/tcp"]}),
    ],
)  # fmt: skip
def test_a_child_inherits_the_parents_runtime_config(
    recipe: dict[str, object], expected: dict[str, object]
) -> None:
    parent = {
        "Env": ["A=1"],
        "Entrypoint": ["/init"],
        "Cmd": ["run"],
        "User": "app",
        "ExposedPorts": {"80/tcp": {}},
    }
    fields = inherit_config(parent, ImageConfigSpec.model_validate(recipe))
    assert {k: fields[k] for k in expected} == expected


def test_a_child_of_an_image_parent_is_reproducible(home: Path, tmp_path: Path) -> None:
    """--check-reproducible builds the child twice (the second time in a throwaway data dir that unpacks
    the parent again) and compares every artifact."""
    recipe = RecipeSource.read(child_recipe(tmp_path, "kiln:base@1.0.0/1"))
    request = BuildRequest(recipe=recipe, data_dir=home, options=BuildOptions(check_reproducible=True))
    monitor = ListMonitor()
    result = run_build(request, monitor=monitor)
    assert result.image.parent_digest is not None and result.product.source_date_epoch == EPOCH
    ends = [e for e in monitor.events if e.kind == "end" and e.scope == "reproducible"]
    assert [e.status for e in ends] == ["success"]
    unpacked = [e for e in monitor.events if e.kind == "end" and e.message.startswith("unpack 1 layers")]
    assert len(unpacked) == 2  # the twin's own data dir unpacked the parent again: an independent build


def test_kiln_build_names_the_recorded_versions_and_exits_2(home: Path, tmp_path: Path) -> None:
    recipe = child_recipe(tmp_path, "kiln:base@1.1.x")
    done = subprocess.run([str(KILN), "build", str(recipe)], capture_output=True, text=True, check=False,
                          env={**os.environ, "KILN_HOME": str(home), "KILN_CACHE_DIR": str(home / "cache")})  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "parent kiln:base@1.1.x: no version of base matches 1.1.x" in done.stderr
    assert "recorded versions of base: 1.0.0/1" in done.stderr and "Traceback" not in done.stderr
