"""OCI image layouts: structure, determinism, and acceptance by skopeo and umoci."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from kiln.layers.tar import LayerBlob, write_layer
from kiln.outputs.oci import History, ImageConfig, OciError, OciImage, write_oci_layout
from kiln.sandbox.run import run
from tests.layers.helpers import make_upper

EPOCH = 1_700_000_000
CREATED = datetime.fromtimestamp(EPOCH, UTC)


def blob_json(layout: Path, digest: str) -> dict:  # type: ignore[type-arg]
    return json.loads((layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes())


@pytest.fixture
def layers(tmp_path: Path) -> list[LayerBlob]:
    lower, upper = make_upper(tmp_path / "trees")
    (lower / "usr/bin").mkdir(parents=True)
    (lower / "usr/bin/hello").write_text("#!/bin/sh\necho hello\n")
    blobs = tmp_path / "blobs"
    return [
        write_layer(lower, blobs / "0.tar.gz", epoch=EPOCH, kind="rootfs"),
        write_layer(upper, blobs / "1.tar.gz", epoch=EPOCH, kind="upper"),
    ]


def config(**changes: object) -> ImageConfig:
    return ImageConfig(
        created=CREATED,
        cmd=["/bin/sh"],
        exposed_ports=["80", "53/udp"],
        labels={"org.example.team": "platform"},
        working_dir="/srv",
        **changes,  # type: ignore[arg-type]
    )


HISTORY = [History("debian:bookworm (mmdebstrap)", "parent"), History("component tweak 1.0.0", "tweak")]
ANNOTATIONS = {"org.opencontainers.image.title": "demo", "org.opencontainers.image.version": "1.0.0"}


def write(dest: Path, layers: list[LayerBlob], **kw: object) -> OciImage:
    args: dict[str, object] = {"history": HISTORY, "annotations": ANNOTATIONS, "tag": "1.0.0"} | kw
    return write_oci_layout(dest, layers, config(), **args)  # type: ignore[arg-type]


def test_layout_documents(layers: list[LayerBlob], tmp_path: Path) -> None:
    image = write(tmp_path / "oci", layers)
    layout = image.path
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (desc,) = index["manifests"]
    assert desc["digest"] == image.manifest_digest
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "1.0.0"}
    manifest = blob_json(layout, image.manifest_digest)
    assert manifest["config"]["digest"] == image.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == [b.digest for b in layers]
    assert manifest["annotations"]["org.opencontainers.image.title"] == "demo"
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    cfg = blob_json(layout, image.config_digest)
    assert (cfg["architecture"], cfg["os"], cfg["created"]) == ("amd64", "linux", "2023-11-14T22:13:20Z")
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [b.diff_id for b in layers]}
    assert [h["created_by"] for h in cfg["history"]] == [h.created_by for h in HISTORY]
    assert cfg["config"]["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["config"]["Cmd"] == ["/bin/sh"] and cfg["config"]["WorkingDir"] == "/srv"
    blobs = list((layout / "blobs/sha256").iterdir())
    assert len(blobs) == 4 and image.size == sum(p.stat().st_size for p in blobs)
    # Layer blobs are hard links to the cached layer files (same filesystem).
    assert (layout / "blobs/sha256" / layers[0].digest[7:]).stat().st_ino == layers[0].path.stat().st_ino


def test_same_inputs_same_digest_and_replacement_is_clean(layers: list[LayerBlob], tmp_path: Path) -> None:
    one = write(tmp_path / "a", layers)
    two = write(tmp_path / "b", layers)
    again = write(tmp_path / "a", layers)
    assert one.manifest_digest == two.manifest_digest == again.manifest_digest
    assert (tmp_path / "a/index.json").read_bytes() == (tmp_path / "b/index.json").read_bytes()
    other = write(tmp_path / "a", layers, tag="2.0.0")
    assert other.manifest_digest == one.manifest_digest  # the tag lives in index.json only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "blobs", "trees"]


def test_history_must_match_layers(layers: list[LayerBlob], tmp_path: Path) -> None:
    with pytest.raises(OciError, match="2 history entries add a layer but the image has 1 layers"):
        write(tmp_path / "oci", layers[:1])
    empty = [*HISTORY, History("component noop", empty_layer=True)]
    image = write(tmp_path / "oci", layers, history=empty)
    assert blob_json(image.path, image.config_digest)["history"][2]["empty_layer"] is True


@pytest.mark.parametrize("tag", ["", "has space", "-leading", "trailing/", "a//b"])
def test_bad_tags_are_refused(layers: list[LayerBlob], tmp_path: Path, tag: str) -> None:
    with pytest.raises(OciError, match="invalid OCI reference name"):
        write(tmp_path / "oci", layers, tag=tag)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "trees"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("exposed_ports", ["http"], "exposed port 'http'"),
        ("exposed_ports", ["70000/tcp"], "exposed port '70000/tcp'"),
        ("env", ["NOEQUALS"], "environment entry 'NOEQUALS'"),
    ],
)
def test_bad_config_values(field: str, value: object, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        ImageConfig(created=CREATED, **{field: value})  # type: ignore[arg-type]


def test_skopeo_and_umoci_accept_the_layout(layers: list[LayerBlob], tmp_path: Path) -> None:
    image = write(tmp_path / "oci", layers)
    inspected = json.loads(run(["skopeo", "inspect", f"oci:{image.path}:1.0.0"]).stdout)
    assert inspected["Digest"] == image.manifest_digest
    assert inspected["Layers"] == [b.digest for b in layers]
    assert inspected["Labels"] == {"org.example.team": "platform"}
    untagged = json.loads(run(["skopeo", "inspect", f"oci:{image.path}"]).stdout)
    assert untagged["Digest"] == image.manifest_digest
    copied = tmp_path / "copied"
    run(["skopeo", "copy", "--quiet", f"oci:{image.path}:1.0.0", f"dir:{copied}"])
    assert (copied / "manifest.json").read_bytes() == (
        image.path / "blobs/sha256" / image.manifest_digest[7:]
    ).read_bytes()
    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{image.path}:1.0.0", str(bundle)])
    root = bundle / "rootfs"
    assert not (root / "etc/doomed").exists()
    assert sorted(p.name for p in (root / "etc/old.d").iterdir()) == ["three.conf"]
    assert (root / "etc/keep").read_text() == "changed\n"
    assert (root / "etc/new").read_text() == "added\n"
    assert (root / "usr/bin/hello").exists()
    shutil.rmtree(bundle)
