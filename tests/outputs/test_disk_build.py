"""Disks built from a real bootable Debian root, inspected with the tools a user would use."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.monitor import ListMonitor
from kiln.outputs.convert import DiskImage, convert_disk
from kiln.outputs.disk import DiskOptions, Identity, build_disk
from kiln.outputs.gpt import ESP_TYPE, ROOT_X86_64_TYPE, read_partitions
from kiln.rootfs.debian import ParentRoot
from tests.outputs.conftest import SEED, snapshot

pytestmark = pytest.mark.e2e


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def debugfs_cat(disk: DiskImage, offset: int, path: str) -> str:
    return sh("debugfs", "-R", f"cat {path}", f"{disk.path}?offset={offset}")


def test_uefi_disk_layout_and_contents(uefi_disk: DiskImage, vm_root: ParentRoot) -> None:
    ids = Identity(SEED)
    esp, root = read_partitions(uefi_disk.path)
    assert (esp.type, esp.name, esp.uuid.lower()) == (ESP_TYPE, "esp", ids.uuid("esp-partition"))
    assert (root.type, root.name, root.uuid.lower()) == (ROOT_X86_64_TYPE, "root", ids.uuid("root-partition"))
    assert not esp.legacy_boot
    table = json.loads(sh("sfdisk", "--json", str(uefi_disk.path)))["partitiontable"]
    assert table["id"].lower() == ids.uuid("disk")
    # The raw disk is sparse: far less allocated than its size.
    assert uefi_disk.format == "raw" and uefi_disk.real_size < uefi_disk.virtual_size * 0.7
    assert uefi_disk.virtual_size == uefi_disk.path.stat().st_size
    # Root file system: clean, identified by the derived UUID, with the disk's own files.
    fs = f"{uefi_disk.path}?offset={root.start}"
    info = sh("dumpe2fs", "-h", fs)
    assert (
        f"Filesystem UUID:          {ids.uuid('root-fs')}" in info
        and "Filesystem volume name:   root" in info
    )
    fstab = debugfs_cat(uefi_disk, root.start, "/etc/fstab")
    assert f"UUID={ids.uuid('root-fs')}\t/\text4" in fstab and "/boot/efi\tvfat" in fstab
    assert debugfs_cat(uefi_disk, root.start, "/etc/machine-id") == ""
    assert debugfs_cat(uefi_disk, root.start, "/etc/hostname") == "kiln-test\n"
    assert "Type: directory" in sh("debugfs", "-R", "stat /boot/efi", fs)
    # The ESP: systemd-boot, the image's own kernel and initramfs, a loader entry mounting the root by UUID.
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    esp_img = f"{uefi_disk.path}@@{esp.start}"
    listing = subprocess.run(["mdir", "-/", "-b", "-i", esp_img, "::/"], check=True, capture_output=True,
                             text=True, env=env).stdout  # fmt: skip
    kernel = sorted(p.name for p in (vm_root.rootfs / "boot").glob("vmlinuz-*"))[-1].removeprefix("vmlinuz-")
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing and f"::/kiln/{kernel}/linux" in listing
    assert f"::/kiln/{kernel}/initrd" in listing
    entry = subprocess.run(["mtype", "-i", esp_img, f"::/loader/entries/kiln-{kernel}.conf"], check=True,
                           capture_output=True, text=True, env=env).stdout  # fmt: skip
    assert f"options root=UUID={ids.uuid('root-fs')} ro console=tty0 console=ttyS0,115200n8" in entry


def test_root_fs_is_consistent(uefi_disk: DiskImage) -> None:
    _, root = read_partitions(uefi_disk.path)
    done = subprocess.run(
        ["e2fsck", "-fn", f"{uefi_disk.path}?offset={root.start}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    esp, _ = read_partitions(uefi_disk.path)
    with open(uefi_disk.path, "rb") as fh:
        fh.seek(esp.start)
        data = fh.read(esp.size)
    assert data[510:512] == b"\x55\xaa"


def test_build_is_reproducible_and_leaves_the_root_alone(
    uefi_disk: DiskImage, vm_root: ParentRoot, tmp_path: Path
) -> None:
    before = snapshot(vm_root.rootfs, "etc") | snapshot(vm_root.rootfs, "boot")
    again = build_disk(vm_root.rootfs, tmp_path / "again.raw", DiskOptions(hostname="kiln-test"),
                       epoch=vm_root.source_date_epoch, seed=SEED, monitor=ListMonitor())  # fmt: skip
    assert again.digest == uefi_disk.digest  # same root, options and seed: same bytes
    assert snapshot(vm_root.rootfs, "etc") | snapshot(vm_root.rootfs, "boot") == before
    assert not (vm_root.rootfs / "boot/efi").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.raw"]  # no scratch or partial files


def test_formats_pass_qemu_img_check_and_reproduce(uefi_disk: DiskImage, tmp_path: Path) -> None:
    digests: dict[str, set[str]] = {}
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        folder.mkdir()
        for fmt in ("qcow2", "vmdk", "vhdx", "vhd"):
            image = convert_disk(uefi_disk.path, fmt, folder / f"disk.{fmt}", epoch=1700000000)  # type: ignore[arg-type]
            info = json.loads(sh("qemu-img", "info", "--output=json", str(image.path)))
            assert info["format"] == ("vpc" if fmt == "vhd" else fmt)
            assert image.virtual_size == uefi_disk.virtual_size, fmt
            assert image.real_size < uefi_disk.virtual_size and image.digest.startswith("sha256:")
            if fmt != "vhd":  # qemu-img has no checks for vpc
                sh("qemu-img", "check", str(image.path))
            digests.setdefault(fmt, set()).add(image.digest)
        assert sorted(p.name for p in folder.iterdir()) == [
            "disk.qcow2",
            "disk.vhd",
            "disk.vhdx",
            "disk.vmdk",
        ]
    # Bit-identical except VHDX, whose headers hold random GUIDs under checksums (documented).
    assert {fmt: len(found) for fmt, found in digests.items()} == {"qcow2": 1, "vmdk": 1, "vhdx": 2, "vhd": 1}
    descriptor = (tmp_path / "a/disk.vmdk").read_bytes()[:4096]
    assert b'SPARSE "disk.vmdk"' in descriptor  # the VMDK names its own, final file


def test_bios_boot_partition(hybrid_disk: DiskImage) -> None:
    esp, _ = read_partitions(hybrid_disk.path)
    assert esp.legacy_boot
    with open(hybrid_disk.path, "rb") as fh:
        assert fh.read(440) == Path("/usr/lib/syslinux/mbr/gptmbr.bin").read_bytes()[:440]
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    listing = subprocess.run(["mdir", "-/", "-a", "-b", "-i", f"{hybrid_disk.path}@@{esp.start}", "::/"],
                             check=True, capture_output=True, text=True, env=env).stdout  # fmt: skip
    for name in ("::/syslinux/ldlinux.sys", "::/syslinux/syslinux.cfg", "::/EFI/BOOT/BOOTX64.EFI"):
        assert name in listing


def test_too_small_a_disk_writes_nothing(vm_root: ParentRoot, tmp_path: Path) -> None:
    with pytest.raises(KilnError, match="is too small"):
        build_disk(vm_root.rootfs, tmp_path / "d.raw", DiskOptions(size="300M"), epoch=0, seed="s",
                   monitor=ListMonitor())  # fmt: skip
    assert list(tmp_path.iterdir()) == []
