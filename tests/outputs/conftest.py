"""Fixtures for disk outputs: a real bootable Debian root (kernel, systemd, udev, initramfs) and disks
built from it, cached across sessions like ``bookworm_root``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from kiln.outputs.convert import DiskImage
from kiln.outputs.disk import DiskOptions, build_disk
from kiln.rootfs.debian import DebianParent, ParentRoot, ensure_parent
from kiln.store import Store

VM_PACKAGES = ("initramfs-tools", "linux-image-amd64", "systemd-sysv", "udev", "zstd")
VM_PARENT = DebianParent(
    distribution="debian", suite="bookworm", mirror="http://deb.debian.org/debian", packages=VM_PACKAGES
)
SEED = "sha256:" + "ab" * 32


@pytest.fixture(scope="session")
def vm_root(_shared_cache: None, tmp_path_factory: pytest.TempPathFactory) -> ParentRoot:
    """Debian 12 with a kernel, systemd and an initramfs (~100 s the first time, then cached).
    Read-only: never modify it."""
    store = Store.open(tmp_path_factory.mktemp("vm-parent-home"))
    return ensure_parent(VM_PARENT, store, ListMonitor())


@pytest.fixture(scope="session")
def uefi_disk(vm_root: ParentRoot, tmp_path_factory: pytest.TempPathFactory) -> DiskImage:
    """A UEFI raw disk built from ``vm_root`` (shared by the disk and VM tests of a session)."""
    dest = tmp_path_factory.mktemp("uefi-disk") / "disk.raw"
    options = DiskOptions(hostname="kiln-test")
    return build_disk(vm_root.rootfs, dest, options, epoch=vm_root.source_date_epoch, seed=SEED,
                      monitor=ListMonitor())  # fmt: skip


@pytest.fixture(scope="session")
def hybrid_disk(vm_root: ParentRoot, tmp_path_factory: pytest.TempPathFactory) -> DiskImage:
    """A disk that boots under UEFI and legacy BIOS firmware."""
    dest = tmp_path_factory.mktemp("hybrid-disk") / "disk.raw"
    return build_disk(vm_root.rootfs, dest, DiskOptions(boot="hybrid"), epoch=vm_root.source_date_epoch,
                      seed=SEED, monitor=ListMonitor())  # fmt: skip


def snapshot(root: Path, rel: str) -> dict[str, tuple[int, int, float]]:
    """(mode, size, mtime) of every path under ``root/rel``: proves a build left the root alone."""
    base = root / rel
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime)
        for p in [base, *base.rglob("*")]
    }
