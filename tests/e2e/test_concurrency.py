"""Builds running at once share caches safely: the real CLI, four builds at a time, twice.

Small recipes (the shared minbase parent, a component writing a file) keep it quick. Each scenario
starts from an empty layer cache of its own (so the builds race to make every layer) whose parents,
.debs and apt state come from the shared test cache.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kiln.build.keys import parent_layer_key
from kiln.build.parent import debian_parent
from kiln.cachelock import FileLock, try_exclusive
from kiln.recipes.loader import load_recipe
from kiln.rootfs import parentcache
from tests.conftest import TEST_CACHE
from tests.e2e.conftest import KILN, kiln

pytestmark = pytest.mark.e2e

NOTE = """\
name: note
schemaVersion: 1.0
parameters:
  - Text: {type: string, default: hello}
phases:
  - name: build
    steps:
      - name: Write
        action: ExecuteBash
        inputs:
          commands: ["mkdir -p /etc/kiln-note && echo '{{ Text }}' > /etc/kiln-note/{{ Text }}"]
  - name: validate
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands: ["test -s /etc/kiln-note/{{ Text }}"]
"""


def recipe(folder: Path, name: str, texts: list[str]) -> Path:
    """A recipe on the minbase parent with one ``note`` component per text."""
    components = "".join(f"  - path: note.yaml\n    parameters: {{Text: {t}}}\n" for t in texts)
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nversion: 1.0.0\nparent: {{image: 'debian:bookworm'}}\n"
        f"components:\n{components}outputs: [{{type: oci}}]\n"
        "settings: {network: false, source_date_epoch: 1700000000}\n"
    )
    return path


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recipes")
    (folder / "note.yaml").write_text(NOTE)
    made = {"same": recipe(folder, "same", ["hello"])}
    for i in range(4):  # share the parent and the first layer, differ in the second
        made[f"diff{i}"] = recipe(folder, f"diff{i}", ["hello", f"r{i}"])
    return made


def fresh_cache(root: Path) -> Path:
    """An empty layer cache sharing parents, .debs and apt state with the test cache."""
    cache = root / "cache"
    cache.mkdir(parents=True)
    for sub in ("parents", "debs", "apt"):
        (TEST_CACHE / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(TEST_CACHE / sub)
    return cache


def build(path: Path, home: Path, cache: Path, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = kiln(
        "build", str(path), "--json", *extra, home=home, env={"KILN_CACHE_DIR": str(cache)}
    ).json()
    return result


def at_once(jobs: list[tuple[Path, Path, Path]]) -> list[dict[str, Any]]:
    """Run every (recipe, home, cache) build at the same time; all must succeed."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: build(*job), jobs))


def note_of(result: dict[str, Any], text: str) -> str:
    """The content of /etc/kiln-note/<text> in the image's last layer."""
    layout = Path(next(a for a in result["image"]["artifacts"] if a["kind"] == "oci")["path"])
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    blob = (layout / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        member = tar.extractfile(f"etc/kiln-note/{text}")
        assert member is not None
        return member.read().decode().strip()


@pytest.fixture(scope="module")
def expected(recipes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each recipe's digest from builds one at a time (the reference the concurrent builds must match)."""
    root = tmp_path_factory.mktemp("reference")
    cache = fresh_cache(root)
    return {name: build(path, root / "home", cache)["image"]["digest"] for name, path in recipes.items()}


def made_layers(results: list[dict[str, Any]]) -> int:
    """Layers the builds made themselves (parent + one per component, minus the cached ones)."""
    return sum(len(r["image"]["components"]) + 1 - r["cached_layers"] for r in results)


@pytest.mark.parametrize("round_", [1, 2])
def test_same_recipe_four_at_once_in_one_data_dir(
    recipes: dict[str, Path], expected: dict[str, str], tmp_path: Path, round_: int
) -> None:
    cache = fresh_cache(tmp_path)
    results = at_once([(recipes["same"], tmp_path / "home", cache)] * 4)
    assert {r["image"]["digest"] for r in results} == {expected["same"]}
    assert sorted(r["image"]["build"] for r in results) == [1, 2, 3, 4]
    assert made_layers(results) == 2  # one build made each layer; the others waited and reused it


@pytest.mark.parametrize("round_", [1, 2])
def test_same_recipe_four_at_once_in_four_data_dirs_sharing_the_cache(
    recipes: dict[str, Path], expected: dict[str, str], tmp_path: Path, round_: int
) -> None:
    cache = fresh_cache(tmp_path)
    results = at_once([(recipes["same"], tmp_path / f"home{i}", cache) for i in range(4)])
    assert {r["image"]["digest"] for r in results} == {expected["same"]}
    assert made_layers(results) == 2


@pytest.mark.parametrize("round_", [1, 2])
def test_different_recipes_at_once_sharing_the_cache(
    recipes: dict[str, Path], expected: dict[str, str], tmp_path: Path, round_: int
) -> None:
    cache = fresh_cache(tmp_path)
    names = [f"diff{i}" for i in range(4)]
    results = at_once([(recipes[name], tmp_path / f"home{i}", cache) for i, name in enumerate(names)])
    for i, (name, result) in enumerate(zip(names, results, strict=True)):
        assert result["image"]["digest"] == expected[name]
        assert note_of(result, f"r{i}") == f"r{i}"
    assert len({r["image"]["digest"] for r in results}) == 4
    assert made_layers(results) == 1 + 1 + 4  # the shared parent and first layer once, four second layers


def private_parent_cache(root: Path, recipe_path: Path) -> tuple[Path, Path]:
    """A cache whose parent entry is a private copy (hard links) of the test cache's, in the layout
    from before versions; returns (cache, parent entry)."""
    cache = root / "cache"
    (cache / "parents").mkdir(parents=True)
    for sub in ("debs", "apt"):
        (cache / sub).symlink_to(TEST_CACHE / sub)
    key = debian_parent(load_recipe(recipe_path).recipe.parent).key
    shared = parentcache.current_dir(TEST_CACHE / "parents" / key)
    assert shared is not None, "the reference build made the parent"
    entry = cache / "parents" / key
    entry.mkdir()
    subprocess.run(["cp", "-al", str(shared / "rootfs"), str(entry / "rootfs")], check=True)
    subprocess.run(["cp", str(shared / "parent.json"), str(entry / "parent.json")], check=True)
    return cache, entry


def test_refresh_parent_while_a_build_uses_the_parent(
    recipes: dict[str, Path], expected: dict[str, str], tmp_path: Path
) -> None:
    """A build holding the old parent keeps working while ``--refresh-parent`` replaces it; the old
    root goes only when that build is done."""
    path = recipes["same"]
    cache, entry = private_parent_cache(tmp_path, path)
    loaded = load_recipe(path).recipe
    settings = loaded.settings
    assert settings.source_date_epoch is not None
    parent_key = debian_parent(loaded.parent).key
    layer_key = parent_layer_key(parent_key, settings.source_date_epoch, settings.compression_level)
    (cache / "layers").mkdir()
    # Hold the old parent's layer: the user build stops there, after it leased the old parent.
    gate = FileLock(cache / "layers" / f"{layer_key}.lock")
    gate.acquire()
    env = {**os.environ, "KILN_HOME": str(tmp_path / "user"), "KILN_CACHE_DIR": str(cache)}
    user = subprocess.Popen(
        [str(KILN), "build", str(path), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (held := try_exclusive(entry / "lease")) is not None:
            held[0].release()
            assert user.poll() is None and time.monotonic() < deadline, "the build never leased the parent"
            time.sleep(0.1)
        refreshed = build(path, tmp_path / "refresher", cache, "--refresh-parent")
        current = parentcache.current_dir(entry)
        assert current is not None and current.name.startswith("v-")
        assert (entry / "parent.json").is_file() and (entry / "rootfs/usr/bin/bash").is_file()  # in use
        assert refreshed["image"]["digest"].startswith("sha256:")
    finally:
        gate.release()
    out, err = user.communicate(timeout=120)
    assert user.returncode == 0, err
    assert "waiting for another build writing the parent's layer" in err
    assert json.loads(out)["image"]["digest"] == expected["same"]  # built from the old root, intact
    # Its last user gone, the old root went; the refreshed version is the only one left.
    assert not (entry / "rootfs").exists() and not (entry / "parent.json").exists()
    assert [p.name for p in entry.iterdir() if p.name.startswith("v-")] == [current.name]
    again = build(path, tmp_path / "user", cache)
    assert again["image"]["digest"] == refreshed["image"]["digest"]
