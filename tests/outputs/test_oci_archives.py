"""oci-archive, docker-archive and rootfs-tar outputs, judged by skopeo and by unpacking them."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.outputs.docker_archive import write_docker_archive
from kiln.outputs.layout import LayoutError, open_layout
from kiln.outputs.oci import OciImage
from kiln.outputs.oci_archive import write_oci_archive
from kiln.outputs.rootfs_tar import write_rootfs_tar
from kiln.sandbox.run import run
from tests.layers.helpers import SAMPLE_EPOCH, sample_layout


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return sample_layout(tmp_path / "src")


def skopeo_inspect(ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(run(["skopeo", "inspect", ref]).stdout)  # type: ignore[no-any-return]


def test_oci_archive(image: OciImage, tmp_path: Path) -> None:
    one = write_oci_archive(image.path, tmp_path / "a/image.oci.tar")
    two = write_oci_archive(image.path, tmp_path / "b/image.oci.tar")
    assert one.digest == two.digest and one.size == one.path.stat().st_size
    inspected = skopeo_inspect(f"oci-archive:{one.path}:1.0.0")
    assert inspected["Digest"] == image.manifest_digest
    with tarfile.open(one.path) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {SAMPLE_EPOCH}
    assert all(m.uid == 0 and m.uname == "" for m in members)
    assert "index.json" in {m.name for m in members}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["image.oci.tar"]


def test_docker_archive_loads_with_skopeo(image: OciImage, tmp_path: Path) -> None:
    archive = write_docker_archive(image.path, tmp_path / "img.tar", repo_tags=["example/demo:1.0.0"])
    again = write_docker_archive(image.path, tmp_path / "again.tar", repo_tags=["example/demo:1.0.0"])
    assert archive.digest == again.digest
    inspected = skopeo_inspect(f"docker-archive:{archive.path}")
    source = open_layout(image.path)
    # docker-archive layers are identified by their uncompressed digests.
    assert inspected["Layers"] == source.diff_ids
    by_name = skopeo_inspect(f"docker-archive:{archive.path}:example/demo:1.0.0")
    assert by_name["Digest"] == inspected["Digest"]
    copied = tmp_path / "copied"
    run(["skopeo", "copy", "--quiet", f"docker-archive:{archive.path}", f"oci:{copied}:demo"])
    assert open_layout(copied, "demo").diff_ids == source.diff_ids
    with tarfile.open(archive.path) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == ["example/demo:1.0.0"]
    assert manifest[0]["Config"] == source.config_digest.removeprefix("sha256:") + ".json"


@pytest.mark.parametrize("ref", ["Upper:1", "no-tag", "x:bad tag", ":1.0"])
def test_docker_archive_rejects_bad_references(image: OciImage, tmp_path: Path, ref: str) -> None:
    with pytest.raises(KilnError, match="invalid image reference"):
        write_docker_archive(image.path, tmp_path / "img.tar", repo_tags=[ref])
    assert not list(tmp_path.glob("*.tar*")) and not list(tmp_path.glob(".img.tar*"))


def test_docker_archive_detects_a_wrong_diff_id(image: OciImage, tmp_path: Path) -> None:
    layout = tmp_path / "tampered"
    run(["cp", "-a", str(image.path), str(layout)])
    layer = open_layout(layout).layers[1]
    blob = layout / "blobs/sha256" / layer.digest.removeprefix("sha256:")
    (layout / "blobs/sha256" / open_layout(layout).layers[0].digest.removeprefix("sha256:")).unlink()
    blob.rename(layout / "blobs/sha256" / open_layout(layout).layers[0].digest.removeprefix("sha256:"))
    with pytest.raises(LayoutError):
        write_docker_archive(layout, tmp_path / "img.tar", repo_tags=[])
    assert not (tmp_path / "img.tar").exists()


@pytest.mark.parametrize("compress", [True, False])
def test_rootfs_tar_is_the_flattened_image(image: OciImage, tmp_path: Path, compress: bool) -> None:
    archive = write_rootfs_tar(image.path, tmp_path / "out/rootfs.tar", compress=compress)
    again = write_rootfs_tar(image.path, tmp_path / "out/again.tar", compress=compress)
    assert archive.digest == again.digest
    with tarfile.open(archive.path) as tar:
        names = set(tar.getnames())
    assert "etc/doomed" not in names and "etc/new" in names and "usr/bin/hello" in names
    assert {n for n in names if n.startswith("etc/old.d/")} == {"etc/old.d/three.conf"}
    assert not any(".wh." in n for n in names)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["again.tar", "rootfs.tar"]
