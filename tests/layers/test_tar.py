"""Deterministic layer tars: content, metadata, whiteouts and byte-identical output."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from kiln.layers.tar import write_layer
from kiln.layers.walk import Entry, LayerError, LayerKind
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.run import run
from tests.layers.helpers import CAP_NET_BIND_SERVICE, make_tree, make_upper, members, names

EPOCH = 1_700_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_tree(root)
    return root


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_digests_describe_the_file(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(tree, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs")
    data = blob.path.read_bytes()
    assert blob.size == len(data)
    assert blob.digest == sha256(blob.path)
    assert blob.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    # gzip header: no FNAME flag, MTIME 0.
    assert data[3] == 0 and data[4:8] == b"\0\0\0\0"
    assert not list(tmp_path.glob(".l.tar.gz.*")), "temporary file left behind"


def test_same_input_same_bytes_whatever_the_threads_or_mtimes(tree: Path, tmp_path: Path) -> None:
    first = write_layer(tree, tmp_path / "1.tar.gz", epoch=EPOCH, kind="rootfs", threads=1)
    second = write_layer(tree, tmp_path / "2.tar.gz", epoch=EPOCH, kind="rootfs", threads=4)
    # Touch everything into the future: mtimes past the epoch are clamped, so nothing changes.
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            os.utime(Path(dirpath, name), (EPOCH + 999, EPOCH + 999), follow_symlinks=False)
    third = write_layer(tree, tmp_path / "3.tar.gz", epoch=EPOCH, kind="rootfs")
    assert first.path.read_bytes() == second.path.read_bytes() == third.path.read_bytes()
    assert first.digest == second.digest == third.digest


def test_large_file_spanning_many_chunks_round_trips(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    payload = os.urandom(1 << 20) * 3 + b"tail" + bytes(5 << 20)
    (root / "big").write_bytes(payload)
    one = write_layer(root, tmp_path / "1.tar.gz", epoch=EPOCH, kind="rootfs", threads=1)
    two = write_layer(root, tmp_path / "2.tar.gz", epoch=EPOCH, kind="rootfs", threads=3)
    assert one.path.read_bytes() == two.path.read_bytes()
    with tarfile.open(one.path, "r:gz") as tar:
        extracted = tar.extractfile("big")
        assert extracted is not None and extracted.read() == payload


def test_order_metadata_and_entry_types(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(tree, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs")
    order = names(blob.path)
    assert order == sorted(order, key=os.fsencode)
    assert order.index("a") < order.index("a-b") < order.index("a/z")
    m = members(blob.path)
    assert all(i.uname == "" and i.gname == "" for i in m.values())
    assert all(i.mtime <= EPOCH for i in m.values())
    assert m["etc/hostname"].mtime == EPOCH
    assert (m["var/lib/data/owned"].uid, m["var/lib/data/owned"].gid) == (1234, 5678)
    tool = m["usr/bin/tool"]
    assert tool.isreg() and tool.mode == 0o4755
    assert tool.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == (
        CAP_NET_BIND_SERVICE
    )
    alias = m["usr/bin/tool-alias"]
    assert alias.islnk() and alias.linkname == "usr/bin/tool"
    assert m["bin"].issym() and m["bin"].linkname == "usr/bin"
    assert m["usr/lib/dangling"].linkname == "../nowhere/"
    assert m["etc/initctl"].isfifo()
    kept = m["usr/lib/kept-device"]
    assert kept.ischr() and (kept.devmajor, kept.devminor) == (1, 5)
    assert ("d" * 120) + "/ünïcödé name.txt" in m
    assert os.fsdecode(b"latin1-caf\xe9") in m


def test_runtime_only_entries_are_left_out(tree: Path, tmp_path: Path) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "run/daemon.sock"))
    sock.close()
    m = members(write_layer(tree, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs").path)
    assert "dev" in m and "dev/pts" in m and m["dev/fd"].issym()
    assert "dev/null" not in m
    assert "proc" in m and "sys" in m and "proc/1" not in m
    assert "run/daemon.sock" not in m
    assert "tmp/left-over" in m


def test_upper_dir_whiteouts_from_a_real_overlay(tmp_path: Path) -> None:
    _, upper = make_upper(tmp_path)
    m = members(write_layer(upper, tmp_path / "u.tar.gz", epoch=EPOCH, kind="upper").path)
    assert set(m) == {
        "etc",
        "etc/.wh.doomed",
        "etc/keep",
        "etc/new",
        "etc/old.d",
        "etc/old.d/.wh..wh..opq",
        "etc/old.d/three.conf",
    }
    for marker in ("etc/.wh.doomed", "etc/old.d/.wh..wh..opq"):
        assert m[marker].isreg() and m[marker].size == 0
    assert m["etc/old.d"].isdir()


def test_rootfs_kind_keeps_overlay_markers_as_they_are(tmp_path: Path) -> None:
    """A whole root is never interpreted as an upper dir: a 0:0 char device outside dev/ stays one."""
    root = tmp_path / "root"
    root.mkdir()
    os.mknod(root / "odd", 0o600 | 0o020000, 0)
    m = members(write_layer(root, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs").path)
    assert m["odd"].ischr()


@pytest.mark.parametrize("feature", ["redirect", "metacopy"])
def test_overlay_features_without_oci_equivalent_are_refused(tmp_path: Path, feature: str) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    target = upper / "d" if feature == "redirect" else upper / "f"
    target.touch()
    os.setxattr(target, f"trusted.overlay.{feature}", b"/elsewhere" if feature == "redirect" else b"")
    with pytest.raises(LayerError, match=f"'{feature}'"):
        write_layer(upper, tmp_path / "u.tar.gz", epoch=EPOCH, kind="upper")
    assert not list(tmp_path.glob("*.tar.gz*"))


def test_reserved_whiteout_names_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/.wh.sneaky").touch()
    with pytest.raises(LayerError, match=r"etc/\.wh\.sneaky"):
        write_layer(root, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs")


def test_failure_leaves_no_partial_file(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file vanishing between the scan and the write fails the write and leaves nothing behind."""
    from kiln.layers import tar as tar_module

    out = tmp_path / "out"
    out.mkdir()
    real_scan = tar_module.scan

    def racing_scan(source: Path, kind: LayerKind) -> list[Entry]:
        entries = real_scan(source, kind)
        (tree / "etc/hostname").unlink()
        return entries

    monkeypatch.setattr(tar_module, "scan", racing_scan)
    with pytest.raises(FileNotFoundError):
        write_layer(tree, out / "l.tar.gz", epoch=EPOCH, kind="rootfs")
    assert list(out.iterdir()) == []


@pytest.mark.e2e
def test_debian_root_is_fast_and_reproducible(bookworm_root: ParentRoot, tmp_path: Path) -> None:
    import time

    # A private copy: the shared session root may be read by other tests meanwhile (and must not change,
    # but this test is about the writer, not about that rule).
    root = tmp_path / "root"
    run(["cp", "-a", "--reflink=auto", str(bookworm_root.rootfs), str(root)])
    start = time.monotonic()
    first = write_layer(root, tmp_path / "1.tar.gz", epoch=EPOCH, kind="rootfs")
    elapsed = time.monotonic() - start
    second = write_layer(root, tmp_path / "2.tar.gz", epoch=EPOCH, kind="rootfs", threads=1)
    print(f"bookworm minbase root: {first.size / 1e6:.1f} MB gzip in {elapsed:.1f}s")
    assert first.digest == second.digest and first.diff_id == second.diff_id
    m = members(first.path)
    assert "usr/bin/bash" in m and "dev" in m
    assert not any(i.ischr() or i.isblk() for i in m.values())


def test_bad_compression_level(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="compression level must be 0-9, not 11"):
        write_layer(tree, tmp_path / "l.tar.gz", epoch=EPOCH, kind="rootfs", compresslevel=11)
