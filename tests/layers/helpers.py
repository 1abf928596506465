"""Test helpers: small trees and a real overlayfs upper dir with a deleted file and a replaced directory."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.outputs.oci import OciImage
from kiln.sandbox.run import run

# A valid VFS_CAP_REVISION_2 value granting cap_net_bind_service=ep (what `setcap` writes).
CAP_NET_BIND_SERVICE = bytes.fromhex("0100000200040000000000000000000000000000")


def make_tree(root: Path) -> None:
    """Every kind of entry a root can hold, with awkward names and metadata."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("kiln\n")
    (root / "usr/bin").mkdir(parents=True)
    tool = root / "usr/bin/tool"
    tool.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    tool.chmod(0o4755)
    os.setxattr(tool, "security.capability", CAP_NET_BIND_SERVICE)
    os.link(tool, root / "usr/bin/tool-alias")
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/lib").mkdir()
    (root / "usr/lib/dangling").symlink_to("../nowhere/")
    (root / "a-b").write_text("sorts before a/ bytewise\n")
    (root / "a").mkdir()
    (root / "a/z").write_text("child\n")
    long_dir = root / ("d" * 120)
    long_dir.mkdir()
    (long_dir / "ünïcödé name.txt").write_text("pax path\n")
    (root / os.fsdecode(b"latin1-caf\xe9")).write_text("not UTF-8\n")  # survives as raw bytes
    os.mkfifo(root / "etc/initctl")
    (root / "var/lib/data").mkdir(parents=True)
    (root / "var/lib/data/owned").write_text("owned by 1234:5678\n")
    os.chown(root / "var/lib/data/owned", 1234, 5678)
    (root / "dev/pts").mkdir(parents=True)
    os.mknod(root / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    (root / "dev/fd").symlink_to("/proc/self/fd")
    os.mknod(root / "usr/lib/kept-device", 0o600 | 0o020000, os.makedev(1, 5))
    (root / "proc/1").mkdir(parents=True)
    (root / "proc/1/status").write_text("not in images\n")
    (root / "sys").mkdir()
    (root / "run").mkdir()
    (root / "tmp").mkdir()
    (root / "tmp/left-over").write_text("kept\n")
    os.utime(root / "etc/hostname", (4_000_000_000, 4_000_000_000))


def members(tar_gz: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_gz, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def names(tar_gz: Path) -> list[str]:
    with tarfile.open(tar_gz, "r:gz") as tar:
        return tar.getnames()


@contextmanager
def overlay(lower: Path, work_base: Path) -> Iterator[tuple[Path, Path]]:
    """Mount an overlay on ``lower``; yields (merged, upper) and always unmounts."""
    upper, work, merged = work_base / "upper", work_base / "work", work_base / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)])
    try:
        yield merged, upper
    finally:
        run(["umount", str(merged)])


def make_upper(base: Path) -> tuple[Path, Path]:
    """A lower tree and the upper dir of a real overlay where a file was deleted, a directory replaced
    (opaque), a file added and a file changed. Returns (lower, upper)."""
    lower = base / "lower"
    (lower / "etc/old.d").mkdir(parents=True)
    (lower / "etc/old.d/one.conf").write_text("one\n")
    (lower / "etc/old.d/two.conf").write_text("two\n")
    (lower / "etc/doomed").write_text("delete me\n")
    (lower / "etc/keep").write_text("original\n")
    with overlay(lower, base / "ovl") as (merged, upper):
        (merged / "etc/doomed").unlink()
        for child in (merged / "etc/old.d").iterdir():
            child.unlink()
        (merged / "etc/old.d").rmdir()
        (merged / "etc/old.d").mkdir()
        (merged / "etc/old.d/three.conf").write_text("three\n")
        (merged / "etc/keep").write_text("changed\n")
        (merged / "etc/new").write_text("added\n")
    return lower, upper


SAMPLE_EPOCH = 1_700_000_000


def sample_layout(base: Path, *, tag: str = "1.0.0") -> OciImage:
    """A two-layer OCI layout: a small root plus a real overlay upper dir (deletion, opaque dir)."""
    from datetime import UTC, datetime

    from kiln.layers.tar import write_layer
    from kiln.outputs.oci import History, ImageConfig, write_oci_layout

    lower, upper = make_upper(base / "trees")
    (lower / "usr/bin").mkdir(parents=True)
    (lower / "usr/bin/hello").write_text("#!/bin/sh\necho hello\n")
    (lower / "usr/bin/hello").chmod(0o755)
    layers = [
        write_layer(lower, base / "blobs/0.tar.gz", epoch=SAMPLE_EPOCH, kind="rootfs"),
        write_layer(upper, base / "blobs/1.tar.gz", epoch=SAMPLE_EPOCH, kind="upper"),
    ]
    config = ImageConfig(created=datetime.fromtimestamp(SAMPLE_EPOCH, UTC), cmd=("/usr/bin/hello",))
    history = [History("parent"), History("component tweak")]
    return write_oci_layout(base / "oci", layers, config, history=history, annotations={}, tag=tag)
