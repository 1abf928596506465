"""Fresh container instances: layers applied with whiteouts, and nothing escapes the instance root."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.layers.tar import LayerBlob, write_layer
from kiln.layers.unpack import UnpackError, UnsafeLayer
from kiln.outputs.layout import LayoutError
from kiln.outputs.oci import History, ImageConfig, write_oci_layout
from kiln.rootfs.debian import ParentRoot
from kiln.verify.instance import fresh_instance, materialise
from tests.layers.helpers import CAP_NET_BIND_SERVICE, make_tree, make_upper

EPOCH = 1_700_000_000


def crafted_layer(path: Path, build: Callable[[tarfile.TarFile], None]) -> LayerBlob:
    """A layer made by hand (what a hostile or foreign image could contain)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    plain = raw.getvalue()
    data = gzip.compress(plain, mtime=0)
    path.write_bytes(data)
    return LayerBlob(
        path,
        "sha256:" + hashlib.sha256(data).hexdigest(),
        "sha256:" + hashlib.sha256(plain).hexdigest(),
        len(data),
    )


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def layout_of(tmp_path: Path, layers: list[LayerBlob], name: str = "oci") -> Path:
    config = ImageConfig(created=datetime.fromtimestamp(EPOCH, UTC))
    history = [History(f"layer {i}") for i in range(len(layers))]
    return write_oci_layout(tmp_path / name, layers, config, history=history, annotations={}, tag="t").path


def test_layers_apply_in_order_with_whiteouts(tmp_path: Path) -> None:
    lower, upper = make_upper(tmp_path / "trees")
    layers = [
        write_layer(lower, tmp_path / "0.tar.gz", epoch=EPOCH, kind="rootfs"),
        write_layer(upper, tmp_path / "1.tar.gz", epoch=EPOCH, kind="upper"),
    ]
    instance = materialise(layout_of(tmp_path, layers), tmp_path / "inst")
    root = instance.root
    assert instance.layers == 2
    assert not (root / "etc/doomed").exists()
    assert sorted(p.name for p in (root / "etc/old.d").iterdir()) == ["three.conf"]
    assert (root / "etc/keep").read_text() == "changed\n"
    assert (root / "etc/new").read_text() == "added\n"


def test_metadata_survives_the_round_trip(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    layers = [write_layer(tree, tmp_path / "0.tar.gz", epoch=EPOCH, kind="rootfs")]
    instance = materialise(layout_of(tmp_path, layers), tmp_path / "inst", allow_devices=True)
    root = instance.root
    tool = root / "usr/bin/tool"
    assert tool.stat().st_mode & 0o7777 == 0o4755
    assert os.getxattr(tool, "security.capability") == CAP_NET_BIND_SERVICE
    assert tool.stat().st_ino == (root / "usr/bin/tool-alias").stat().st_ino
    assert (root / "bin").readlink() == Path("usr/bin")
    owned = (root / "var/lib/data/owned").stat()
    assert (owned.st_uid, owned.st_gid) == (1234, 5678)
    assert (root / "etc/initctl").is_fifo()
    assert (root / "etc/hostname").stat().st_mtime == EPOCH
    assert (root / "usr").stat().st_mtime <= EPOCH
    assert not (root / "dev/null").exists() and (root / "dev/pts").is_dir()
    assert (root / "usr/lib/kept-device").is_char_device() and instance.skipped_devices == ()
    # Full fidelity: the unpacked tree tars back to the very same layer.
    again = write_layer(root, tmp_path / "again.tar.gz", epoch=EPOCH, kind="rootfs")
    assert again.diff_id == layers[0].diff_id


@pytest.mark.e2e
def test_debian_root_round_trips_bit_for_bit(bookworm_root: ParentRoot, tmp_path: Path) -> None:
    layers = [write_layer(bookworm_root.rootfs, tmp_path / "0.tar.gz", epoch=EPOCH, kind="rootfs")]
    start = time.monotonic()
    root = materialise(layout_of(tmp_path, layers), tmp_path / "inst").root
    print(f"materialised bookworm minbase in {time.monotonic() - start:.1f}s")
    again = write_layer(root, tmp_path / "again.tar.gz", epoch=EPOCH, kind="rootfs")
    assert again.diff_id == layers[0].diff_id


def test_device_nodes_are_not_created_by_default(tmp_path: Path) -> None:
    def devices(tar: tarfile.TarFile) -> None:
        add(tar, "tmp", type=tarfile.DIRTYPE, mode=0o1777)
        add(tar, "tmp/hostdisk", type=tarfile.BLKTYPE, devmajor=8, devminor=0)
        add(tar, "tmp/mem", type=tarfile.CHRTYPE, devmajor=1, devminor=1)
        add(tar, "tmp/pipe", type=tarfile.FIFOTYPE)

    instance = materialise(layout_of(tmp_path, [crafted_layer(tmp_path / "0.tgz", devices)]), tmp_path / "i")
    assert instance.skipped_devices == ("tmp/hostdisk", "tmp/mem")
    assert sorted(p.name for p in (instance.root / "tmp").iterdir()) == ["pipe"]


def test_same_layer_entries_survive_an_opaque_marker_sorted_after_them(tmp_path: Path) -> None:
    def base(tar: tarfile.TarFile) -> None:
        add(tar, "d", type=tarfile.DIRTYPE, mode=0o755)
        add(tar, "d/old", b"old")

    def top(tar: tarfile.TarFile) -> None:
        add(tar, "d", type=tarfile.DIRTYPE, mode=0o755)
        add(tar, "d/-early", b"sorted before the marker")  # '-' < '.'
        add(tar, "d/.wh..wh..opq")
        add(tar, "d/late", b"after")
        add(tar, ".wh.missing")  # whiting out nothing is fine

    layers = [crafted_layer(tmp_path / "0.tgz", base), crafted_layer(tmp_path / "1.tgz", top)]
    root = materialise(layout_of(tmp_path, layers), tmp_path / "inst").root
    assert sorted(p.name for p in (root / "d").iterdir()) == ["-early", "late"]


def test_symlinks_in_layers_never_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious\n")

    def hostile(tar: tarfile.TarFile) -> None:
        add(tar, "abs", type=tarfile.SYMTYPE, linkname="/")
        add(tar, "abs/written-via-absolute-link", b"x")
        add(tar, "up", type=tarfile.SYMTYPE, linkname="../../../../../../..")
        add(tar, "up/written-via-dotdot-link", b"x")
        add(tar, "host", type=tarfile.SYMTYPE, linkname=str(outside))
        add(tar, "host/victim", b"overwritten?")
        add(tar, "host/.wh.victim")
        add(tar, "/absolute-name", b"x")

    layers = [crafted_layer(tmp_path / "0.tgz", hostile)]
    root = materialise(layout_of(tmp_path, layers), tmp_path / "inst").root
    assert (outside / "victim").read_text() == "precious\n"
    assert (root / "written-via-absolute-link").exists()
    assert (root / "written-via-dotdot-link").exists()
    assert (root / outside.relative_to("/") / "victim").read_text() == "overwritten?"
    assert (root / "absolute-name").exists()
    assert not (tmp_path / "written-via-dotdot-link").exists()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t: add(t, "../escape", b"x"), "climbs out"),
        (lambda t: add(t, "a/../../escape", b"x"), "climbs out"),
        (lambda t: add(t, "link", type=tarfile.LNKTYPE, linkname="../../etc/passwd"), "climbs out"),
        (lambda t: add(t, "link", type=tarfile.LNKTYPE, linkname="/etc/passwd"), "points to missing"),
        (lambda t: add(t, "etc/.wh.."), "invalid whiteout"),
    ],
)
def test_hostile_entries_are_refused(
    tmp_path: Path, build: Callable[[tarfile.TarFile], None], message: str
) -> None:
    layers = [crafted_layer(tmp_path / "0.tgz", build)]
    with pytest.raises(UnsafeLayer, match=message):
        materialise(layout_of(tmp_path, layers), tmp_path / "inst")
    assert not (tmp_path / "inst").exists()


def test_corrupt_blob_is_detected(tmp_path: Path) -> None:
    layers = [crafted_layer(tmp_path / "0.tgz", lambda t: add(t, "f", b"data"))]
    layout = layout_of(tmp_path, layers)
    blob = layout / "blobs/sha256" / layers[0].digest.removeprefix("sha256:")
    blob.unlink()  # break the hard link before editing
    data = bytearray(layers[0].path.read_bytes())
    data[-9] ^= 0xFF  # inside the deflate stream / CRC
    blob.write_bytes(bytes(data))
    with pytest.raises((LayoutError, UnpackError), match=f"layer blob {layers[0].digest}"):
        materialise(layout, tmp_path / "inst")
    assert not (tmp_path / "inst").exists()


def test_wrong_tag_and_missing_layout(tmp_path: Path) -> None:
    layers = [crafted_layer(tmp_path / "0.tgz", lambda t: add(t, "f", b"data"))]
    layout = layout_of(tmp_path, layers)
    with pytest.raises(LayoutError, match="no image tagged 'nope'"):
        materialise(layout, tmp_path / "inst", tag="nope")
    with pytest.raises(LayoutError, match="oci-layout file missing"):
        materialise(tmp_path / "nowhere", tmp_path / "inst")


def test_fresh_instance_is_removed_afterwards(tmp_path: Path) -> None:
    layers = [crafted_layer(tmp_path / "0.tgz", lambda t: add(t, "f", b"data"))]
    layout = layout_of(tmp_path, layers)
    scratch = tmp_path / "scratch"
    with pytest.raises(RuntimeError), fresh_instance(layout, scratch) as instance:
        assert (instance.root / "f").read_bytes() == b"data"
        raise RuntimeError("test failed inside the instance")
    assert list(scratch.iterdir()) == []
