"""The bootstrap's initramfs is made once, after every package, by the kernel's own postinst hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.monitor import ListMonitor
from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.kernels import kernel_versions, make_initramfs

pytestmark = pytest.mark.e2e


def test_vm_parent_has_one_initramfs_per_kernel_and_debians_symlinks(vm_root: ParentRoot) -> None:
    root = vm_root.rootfs
    [version] = kernel_versions(root)
    assert (root / f"boot/initrd.img-{version}").stat().st_size > 1 << 20
    for link in ("initrd.img", "initrd.img.old"):
        assert str((root / link).readlink()) == f"boot/initrd.img-{version}"
    assert str((root / "vmlinuz").readlink()) == f"boot/vmlinuz-{version}"


def test_making_it_again_gives_the_same_bytes_and_skips_kernels_that_have_one(
    vm_root: ParentRoot, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(vm_root.rootfs), str(root)], check=True)
    [version] = kernel_versions(root)
    initrd = root / f"boot/initrd.img-{version}"
    original = initrd.read_bytes()
    for path in (initrd, root / "initrd.img", root / "initrd.img.old"):
        path.unlink()
    monitor = ListMonitor()
    assert make_initramfs(root, vm_root.source_date_epoch, monitor) == [version]
    assert initrd.read_bytes() == original  # reproducible: same root, same SOURCE_DATE_EPOCH
    assert str((root / "initrd.img").readlink()) == f"boot/initrd.img-{version}"
    assert any(f"kernel {version}: initramfs made once" in e.message for e in monitor.events)
    assert make_initramfs(root, vm_root.source_date_epoch, ListMonitor()) == []


def test_a_root_without_a_kernel_is_left_alone(bookworm_root: ParentRoot) -> None:
    assert kernel_versions(bookworm_root.rootfs) == []
    assert make_initramfs(bookworm_root.rootfs, bookworm_root.source_date_epoch, ListMonitor()) == []
