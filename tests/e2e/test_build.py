"""The spine, end to end: real mmdebstrap, real bwrap, real overlayfs, real skopeo."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e


def layer_members(layout: Path) -> dict[str, set[str]]:
    """Member names of each layer of the layout's (single) image, keyed by layer digest."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest.split(":")[1]).read_text())
    members = {}
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs/sha256" / layer["digest"].split(":")[1], "r:gz") as tar:
            members[layer["digest"]] = set(tar.getnames())
    return members


def step_starts(log_path: str) -> list[tuple[str, str, str]]:
    starts = []
    for line in Path(log_path).read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "start" and event.get("scope") == "step":
            starts.append((event.get("component", ""), event.get("phase", ""), event.get("step", "")))
    return starts


def test_example_builds_into_a_valid_oci_layout(web_build: dict[str, Any], tmp_path: Path) -> None:
    assert web_build["cached_layers"] == 0  # a cold layer cache: every component ran
    assert ("nginx", "build", "InstallNginx") in step_starts(web_build["log_path"])
    image = web_build["image"]
    assert image["name"] == "debian-web" and image["version"] == "1.0.0" and image["build"] == 1
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    oci = next(a for a in image["artifacts"] if a["kind"] == "oci")
    layout = Path(oci["path"])
    members = layer_members(layout)
    everything = set().union(*members.values())
    assert "usr/sbin/nginx" in everything
    assert "var/www/html/index.html" in everything
    # one layer for the parent, one per component with a build phase
    assert len(members) == 4
    inspect = subprocess.run(
        ["skopeo", "inspect", f"oci:{layout}"], capture_output=True, text=True, check=True
    )
    info = json.loads(inspect.stdout)
    assert info["Digest"] == image["digest"]
    assert info["Labels"]["org.opencontainers.image.vendor"] == "Example Platform Team"
    subprocess.run(
        ["skopeo", "copy", f"oci:{layout}", f"dir:{tmp_path / 'copy'}"], check=True, capture_output=True
    )
    assert (tmp_path / "copy/manifest.json").is_file()


def test_hello_page_has_the_greeting(web_build: dict[str, Any]) -> None:
    layout = Path(next(a for a in web_build["image"]["artifacts"] if a["kind"] == "oci")["path"])
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    top = layout / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]
    with gzip.open(top) as fh, tarfile.open(fileobj=fh) as tar:
        page = tar.extractfile("var/www/html/index.html")
        assert page is not None
        assert b"<h1>Hello from Kiln</h1>" in page.read()


def test_rebuild_with_nothing_changed_runs_no_step(
    web_build: dict[str, Any], examples: Path, web_home: Path
) -> None:
    again = kiln("build", str(examples / "recipes/debian-web.yaml"), "--json", home=web_home).json()
    assert again["image"]["digest"] == web_build["image"]["digest"]
    assert again["image"]["build"] == web_build["image"]["build"] + 1
    assert again["ran_steps"] == 0
    assert step_starts(again["log_path"]) == []
    assert again["cached_layers"] == 4


def test_editing_the_last_component_reruns_only_it(
    web_build: dict[str, Any], examples: Path, web_home: Path
) -> None:
    recipe = examples / "recipes/debian-web.yaml"
    edited = recipe.with_name("debian-web-edited.yaml")
    edited.write_text(recipe.read_text().replace("Hello from Kiln", "Hello again"))
    result = kiln("build", str(edited), "--json", home=web_home).json()
    starts = step_starts(result["log_path"])
    build_steps = {(c, s) for c, p, s in starts if p == "build"}
    assert build_steps == {("hello-page", "WritePage")}
    assert result["cached_layers"] == 3
    assert result["image"]["digest"] != web_build["image"]["digest"]


def test_images_and_builds_are_listed(web_build: dict[str, Any], web_home: Path) -> None:
    images = kiln("images", "list", "--json", home=web_home).json()
    assert any(i["digest"] == web_build["image"]["digest"] for i in images)
    shown = kiln("images", "show", "debian-web@1.0.0/1", "--json", home=web_home).json()
    assert next(c["name"] for c in shown["components"]) == "update-os"
    builds = kiln("builds", "list", "--json", home=web_home).json()
    assert any(b["id"] == web_build["build_id"] and b["status"] == "succeeded" for b in builds)
    log = kiln("builds", "show", web_build["build_id"], "--log", home=web_home)
    assert "InstallNginx" in log.stdout and "hello-page" in log.stdout


def test_kiln_test_reruns_tests_on_a_recorded_image(
    web_build: dict[str, Any], web_home: Path, tmp_path: Path
) -> None:
    ref = f"debian-web@1.0.0/{web_build['image']['build']}"
    passed = kiln("test", ref, home=web_home)
    assert "tests passed" in passed.stdout
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "name: no-curl\nschemaVersion: 1.0\nphases:\n  - name: test\n    steps:\n"
        "      - name: CurlIsAbsent\n        action: ExecuteBash\n        inputs:\n"
        "          commands: ['test -x /usr/bin/curl']\n"
    )
    failed = kiln("test", ref, "--documents", str(extra), home=web_home, check=False)
    assert failed.returncode == 1
    assert "CurlIsAbsent" in " ".join(failed.stderr.split())


def test_locked_rebuild_reproduces_the_image(
    web_build: dict[str, Any], examples: Path, web_home: Path
) -> None:
    lock = next(a["path"] for a in web_build["image"]["artifacts"] if a["kind"] == "lock")
    data = json.loads(Path(lock).read_text())
    assert any(p["name"] == "nginx" and p["sha256"] for p in data["packages"])
    result = kiln(
        "build", str(examples / "recipes/debian-web.yaml"), "--locked", lock, "--json", home=web_home
    )
    locked = result.json()
    assert locked["ran_steps"] > 0  # locked layers are never mixed with layers built from the archive
    assert locked["image"]["digest"] == web_build["image"]["digest"]


def test_editing_only_a_validate_phase_keeps_every_layer(
    web_build: dict[str, Any], examples: Path, web_home: Path, tmp_path: Path
) -> None:
    """The layer key covers the build phase: a validate edit reuses all layers and runs validate."""
    components = tmp_path / "components"
    shutil.copytree(examples / "components", components)
    page = components / "hello-page.yaml"
    page.write_text(page.read_text().replace("test -s /var/www", "test -f /var/www"))
    recipe = tmp_path / "recipes/debian-web.yaml"
    recipe.parent.mkdir()
    recipe.write_text((examples / "recipes/debian-web.yaml").read_text())
    result = kiln("build", str(recipe), "--json", home=web_home).json()
    assert result["cached_layers"] == 4
    starts = step_starts(result["log_path"])
    assert not [s for s in starts if s[1] == "build"]
    assert ("hello-page", "validate", "PageExists") in starts
