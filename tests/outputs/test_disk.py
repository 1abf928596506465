"""Disk options and the checks made before any disk work (fast: no bootable root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kiln.errors import KilnError
from kiln.monitor import ListMonitor
from kiln.outputs.bootloader import find_kernels, syslinux_cfg
from kiln.outputs.convert import pin_identifiers
from kiln.outputs.disk import DiskOptions, Identity, build_disk, parse_size, plan_layout
from kiln.outputs.ext4 import Tree, quote
from kiln.outputs.gpt import MIB
from kiln.rootfs.debian import ParentRoot


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2G", 2 << 30), ("1536M", 1536 << 20), ("10GiB", 10 << 30), ("512 MB", 512 << 20), ("1.5G", 3 << 29),
     ("4096", 4096)],
)  # fmt: skip
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": "big"}, "'big' is not a size like 2G"),
        ({"size": "10M"}, "a disk must be at least 64M"),
        ({"filesystem": "ntfs"}, "Input should be 'ext4'"),
        ({"boot": "coreboot"}, "Input should be 'uefi', 'bios' or 'hybrid'"),
        ({"hostname": "-bad-"}, "hostname must be 1-63 letters"),
        ({"kernel_cmdline": "quiet\ninit=/bin/sh"}, "one line of printable ASCII"),
        ({"compress": True}, "Extra inputs are not permitted"),
    ],
)
def test_disk_options_rejected(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DiskOptions.model_validate(fields)


def test_root_without_kernel_is_a_clear_error(bookworm_root: ParentRoot, tmp_path: Path) -> None:
    dest = tmp_path / "disk.raw"
    with pytest.raises(KilnError, match="needs a kernel") as caught:
        build_disk(bookworm_root.rootfs, dest, DiskOptions(), epoch=0, seed="s", monitor=ListMonitor())
    assert caught.value.hint is not None and "linux-image-amd64" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


def test_kernel_without_initramfs(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"kernel")
    with pytest.raises(KilnError, match=r"kernel 6.1.0-9-amd64 has no initramfs") as caught:
        find_kernels(tmp_path)
    assert "initramfs-tools" in (caught.value.hint or "")


def test_kernels_newest_first_and_init_required(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    for version in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
        (tmp_path / f"boot/vmlinuz-{version}").write_bytes(b"k")
        (tmp_path / f"boot/initrd.img-{version}").write_bytes(b"i")
    with pytest.raises(KilnError, match="no /sbin/init"):
        find_kernels(tmp_path)
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin/init").symlink_to("/lib/systemd/systemd")  # dangling on the host: still counts
    assert [k.version for k in find_kernels(tmp_path)] == ["6.1.0-10-amd64", "6.1.0-9-amd64"]
    cfg = syslinux_cfg(find_kernels(tmp_path), "Debian", "root=UUID=x ro")
    assert "LINUX /kiln/6.1.0-10-amd64/linux" in cfg and cfg.startswith("DEFAULT k0")


def test_layout_auto_and_too_small() -> None:
    tree = Tree(used_bytes=700 * MIB, inodes=30000)
    ids = Identity("sha256:x")
    auto = plan_layout(tree, 40 * MIB, DiskOptions(), ids)
    assert auto.esp.start == MIB and auto.root.start == MIB + auto.esp.size
    assert auto.root.size >= 700 * MIB + 512 * MIB and auto.total % MIB == 0
    assert not auto.esp.legacy_boot
    fixed = plan_layout(tree, 40 * MIB, DiskOptions(size="4G", boot="bios"), ids)
    assert fixed.total == 4 << 30 and fixed.esp.legacy_boot
    with pytest.raises(KilnError, match=r"disk size 900M is too small: the image needs at least \d+ MiB"):
        plan_layout(tree, 40 * MIB, DiskOptions(size="900M"), ids)


def test_identity_is_derived_from_the_seed() -> None:
    a, b = Identity("sha256:aa"), Identity("sha256:bb")
    assert a.uuid("disk") == Identity("sha256:aa").uuid("disk")
    assert a.uuid("disk") != b.uuid("disk") and a.uuid("disk") != a.uuid("root-fs")
    assert len(a.fat_serial) == 8 and a.fat_serial != b.fat_serial


def test_debugfs_quoting() -> None:
    assert quote('/etc/a "b"') == '"/etc/a ""b"""'
    assert quote("/tmp/new\nline") is None


def _vmdk_head(cid: str) -> bytes:
    """The start of a monolithicSparse VMDK as qemu-img writes it: header, then the descriptor text
    NUL-padded to the end of its area (the CID is printed with %x, so it may have fewer digits)."""
    text = (
        f"# Disk DescriptorFile\nversion=1\nCID={cid}\nparentCID=ffffffff\n"
        'createType="monolithicSparse"\n# Extent description\nRW 2048 SPARSE "disk.vmdk"\n'
    ).encode()
    return b"KDMV".ljust(512, b"\0") + text.ljust(10240, b"\0")


@pytest.mark.parametrize("cid", ["d2303df1", "2303df1", "a"])
def test_vmdk_content_id_is_pinned_whatever_its_length(tmp_path: Path, cid: str) -> None:
    seed = bytes(range(32))
    reference = tmp_path / "reference.vmdk"
    reference.write_bytes(_vmdk_head("ffffffff"))
    disk = tmp_path / "disk.vmdk"
    disk.write_bytes(_vmdk_head(cid))
    for path in (reference, disk):
        pin_identifiers(path, "vmdk", seed, 0)
    pinned = disk.read_bytes()
    assert pinned == reference.read_bytes() and len(pinned) == 512 + 10240
    assert b"\nCID=00010203\nparentCID=ffffffff\n" in pinned and b'SPARSE "disk.vmdk"\n\0' in pinned
