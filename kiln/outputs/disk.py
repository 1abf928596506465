"""Bootable disk images from an image root: a GPT disk with a FAT boot partition (ESP) and an ext4 root.

Built without mounts or loop devices, as a sparse file: ``sfdisk`` writes the partition table,
``mkfs.ext4 -d`` writes the root straight into the disk at its offset, the ESP is made in a file of its
own with ``mkfs.vfat`` + ``mtools`` and copied in. Boot modes:

- ``uefi``: systemd-boot as ``EFI/BOOT/BOOTX64.EFI`` with one loader entry per kernel;
- ``bios``: SYSLINUX on the same FAT partition (marked LegacyBIOSBootable) and ``gptmbr.bin``;
- ``hybrid``: both, so one disk boots under UEFI and legacy BIOS firmware.

The source root is never modified: the disk's own files (``/etc/fstab``, an empty ``/etc/machine-id``
so each instance gets its own, ``/etc/hostname``) are written into the file system after mkfs.
Every identifier (disk and partition GUIDs, file system UUID, hash seed, FAT serial) is derived from
``seed``: the same root, options and seed give the same bytes (tested). What the bytes still depend
on: the host's e2fsprogs, dosfstools, mtools and syslinux versions, and systemd-boot when the image
does not ship ``systemd-boot-efi`` itself (then the host's copy is used); and files whose names hold
control characters keep their source timestamps (debugfs cannot name them; Kiln warns).

A kernel upgraded inside a running instance lands in ``/boot``, but the instance keeps booting the
kernel on the ESP: kernels change by rebuilding the image (the golden-image way), not in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from kiln.errors import KilnError
from kiln.monitor import Monitor
from kiln.outputs.bootloader import check_cmdline, find_kernels, os_title
from kiln.outputs.convert import DiskImage, convert_disk, inspect_disk
from kiln.outputs.esp import EspSpec, build_esp
from kiln.outputs.ext4 import Override, Tree, make_root_fs, scan_tree
from kiln.outputs.gpt import (
    ESP_TYPE,
    MIB,
    ROOT_X86_64_TYPE,
    SECTOR,
    Partition,
    copy_sparse,
    write_partition_table,
)

__all__ = ["DiskImage", "DiskOptions", "build_disk", "convert_disk", "parse_size"]

GPTMBR = Path("/usr/lib/syslinux/mbr/gptmbr.bin")
ESP_MIN = 256 * MIB
HEADROOM_MIN = 512 * MIB
NAMESPACE = uuid.UUID("7b1c3f0e-5d2a-4c61-9a8e-6f0d4b2e9c17")  # Kiln's namespace for derived UUIDs
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
HOSTNAME_RE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")


def parse_size(text: str) -> int:
    """``"2G"``, ``"1536M"``, ``"2GiB"`` → bytes (binary units)."""
    match = SIZE_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 2G, 1536M or 10GiB")
    scale = 1 << (10 * " KMGT".index((match.group(2) or " ").upper()))
    return int(float(match.group(1)) * scale)


class DiskOptions(BaseModel):
    """Recipe options of a disk output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: str | None = None  # e.g. "4G"; None = what the root uses plus headroom
    filesystem: Literal["ext4"] = "ext4"
    boot: Literal["uefi", "bios", "hybrid"] = "uefi"
    kernel_cmdline: str = "console=tty0 console=ttyS0,115200n8"
    hostname: str | None = None

    @field_validator("size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and parse_size(value) < 64 * MIB:
            raise ValueError("a disk must be at least 64M")
        return value

    @field_validator("kernel_cmdline")
    @classmethod
    def _cmdline(cls, value: str) -> str:
        try:
            return check_cmdline(value)
        except KilnError as exc:
            raise ValueError(exc.message) from None

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and not HOSTNAME_RE.match(value):
            raise ValueError("hostname must be 1-63 letters, digits or '-', not starting or ending with '-'")
        return value


@dataclass(frozen=True)
class Identity:
    """Identifiers derived from the seed (the image digest)."""

    seed: str

    def uuid(self, purpose: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.seed}/{purpose}"))

    @property
    def fat_serial(self) -> str:
        return hashlib.sha256(f"{self.seed}/fat-serial".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Layout:
    total: int
    esp: Partition
    root: Partition


def _round_mib(value: int) -> int:
    return -(-value // MIB) * MIB


def plan_layout(tree: Tree, kernel_bytes: int, options: DiskOptions, ids: Identity) -> Layout:
    """Partition sizes: ESP ≥ 256 MiB, root = what the files need (+ headroom unless a size is given)."""
    esp_size = max(ESP_MIN, _round_mib(2 * kernel_bytes + 64 * MIB))
    root_min = _round_mib(int(tree.used_bytes * 1.08) + tree.inodes * 256 + 96 * MIB)
    if options.size is None:
        root_size = _round_mib(root_min + max(HEADROOM_MIN, tree.used_bytes // 4))
        total = MIB + esp_size + root_size + MIB
    else:
        total = _round_mib(parse_size(options.size))
        root_size = total - esp_size - 2 * MIB
        if root_size < root_min:
            need = (root_min + esp_size + 2 * MIB + MIB - 1) // MIB
            raise KilnError(
                f"disk size {options.size} is too small: the image needs at least {need} MiB",
                hint="raise the disk output's size, or leave it out to size the disk automatically",
            )
    legacy = options.boot in ("bios", "hybrid")
    esp = Partition("esp", ESP_TYPE, ids.uuid("esp-partition"), MIB, esp_size, legacy_boot=legacy)
    root = Partition("root", ROOT_X86_64_TYPE, ids.uuid("root-partition"), MIB + esp_size, root_size)
    return Layout(total, esp, root)


def disk_files(options: DiskOptions, root_uuid: str, esp_serial: str, rootfs: Path) -> list[Override]:
    """The files the disk gets on top of the image root."""
    serial = f"{esp_serial[:4]}-{esp_serial[4:]}".upper()
    fstab = (
        "# Written by Kiln for this disk image: the root file system and the EFI system partition.\n"
        f"UUID={root_uuid}\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"
        # Mounted on first access only: booting never waits for it (udev is slow under emulation).
        f"UUID={serial}\t/boot/efi\tvfat\tumask=0077,noauto,nofail,x-systemd.automount\t0\t0\n"
    )
    files = [
        Override("/etc/fstab", fstab.encode()),
        # Empty: systemd gives each instance its own machine ID on first boot.
        Override("/etc/machine-id", b"", 0o444),
    ]
    if (rootfs / "var/lib/systemd/random-seed").exists():
        files.append(Override("/var/lib/systemd/random-seed", None))  # never share a random seed
    if options.hostname:
        files.append(Override("/etc/hostname", f"{options.hostname}\n".encode()))
    return files


def build_disk(rootfs: Path, dest_raw: Path, options: DiskOptions, *, epoch: int, seed: str,
               monitor: Monitor) -> DiskImage:  # fmt: skip
    """Build the bootable raw disk ``dest_raw`` from the read-only root ``rootfs``.

    The disk appears at ``dest_raw`` only when complete; scratch files are removed however it ends.
    """
    with monitor.stage("output", f"disk image {dest_raw.name} ({options.boot})") as info:
        kernels = find_kernels(rootfs)
        ids = Identity(seed)
        tree = scan_tree(rootfs, epoch)
        kernel_bytes = sum(k.vmlinuz.stat().st_size + k.initrd.stat().st_size for k in kernels)
        layout = plan_layout(tree, kernel_bytes, options, ids)
        root_uuid, serial = ids.uuid("root-fs"), ids.fat_serial
        options_line = f"root=UUID={root_uuid} ro {options.kernel_cmdline}".strip()
        dest_raw.parent.mkdir(parents=True, exist_ok=True)
        partial = dest_raw.with_name(f".{dest_raw.name}.partial")
        scratch = Path(tempfile.mkdtemp(prefix=".kiln-disk-", dir=dest_raw.parent))
        try:
            with open(partial, "wb") as fh:
                fh.truncate(layout.total)
            write_partition_table(partial, ids.uuid("disk"), [layout.esp, layout.root])
            make_root_fs(
                partial, offset=layout.root.start, size=layout.root.size, rootfs=rootfs, tree=tree,
                label="root", fs_uuid=root_uuid, hash_seed=ids.uuid("root-fs-hash-seed"), epoch=epoch,
                overrides=disk_files(options, root_uuid, serial, rootfs), mkdirs=["/boot/efi"],
                scratch=scratch, monitor=monitor,
            )  # fmt: skip
            esp = EspSpec(
                size=layout.esp.size, serial=serial, label="ESP", hidden_sectors=layout.esp.start // SECTOR,
                kernels=kernels, title=os_title(rootfs), options=options_line,
                uefi=options.boot in ("uefi", "hybrid"), bios=options.boot in ("bios", "hybrid"),
            )  # fmt: skip
            build_esp(scratch / "esp.img", esp, rootfs, epoch=epoch, scratch=scratch)
            copy_sparse(scratch / "esp.img", partial, layout.esp.start)
            if esp.bios:
                _write_gptmbr(partial)
            image = inspect_disk(partial, "raw")
            os.replace(partial, dest_raw)
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(scratch, ignore_errors=True)
        image = image.model_copy(update={"path": dest_raw})
        info.update(
            kernel=kernels[0].version, boot=options.boot, virtual_size=image.virtual_size,
            real_size=image.real_size, digest=image.digest, root_uuid=root_uuid,
        )  # fmt: skip
        return image


def _write_gptmbr(disk: Path) -> None:
    """SYSLINUX's GPT-aware MBR boot code (440 bytes, before the disk signature and partition table)."""
    if not GPTMBR.is_file():
        raise KilnError(f"{GPTMBR} is missing", hint="apt-get install syslinux-common")
    code = GPTMBR.read_bytes()[:440]
    with open(disk, "r+b") as fh:
        fh.write(code)
