"""The FAT boot partition, built in a file of its own with ``mkfs.vfat`` + ``mtools`` (no mount: this
kernel has no vfat driver), holding the kernels and initramfs, systemd-boot (UEFI) and/or SYSLINUX (BIOS).

Reproducible: fixed volume serial, ``--invariant`` for mkfs.vfat's time-based fields and
``SOURCE_DATE_EPOCH`` for every timestamp mtools and syslinux write.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError, ToolMissing
from kiln.outputs.bootloader import Kernel, boot_entry, entry_name, loader_conf, syslinux_cfg
from kiln.sandbox.run import require_tool, run

# Debian packages of the tools the gateway's table does not know.
PACKAGES = {"mmd": "mtools", "mcopy": "mtools", "syslinux": "syslinux", "fsck.vfat": "dosfstools"}

SYSTEMD_BOOT = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"


@dataclass(frozen=True)
class EspSpec:
    """What goes on the boot partition."""

    size: int
    serial: str  # 8 hex digits
    label: str
    hidden_sectors: int  # partition start in sectors, for the BIOS boot sector
    kernels: list[Kernel]
    title: str
    options: str  # full kernel command line
    uefi: bool
    bios: bool


def tool(name: str) -> str:
    try:
        return require_tool(name)
    except ToolMissing:
        raise ToolMissing(name, PACKAGES.get(name, name)) from None


def systemd_boot_binary(rootfs: Path) -> Path:
    """systemd-boot from the image when it ships it, else from this machine (package systemd-boot-efi)."""
    for candidate in (rootfs / SYSTEMD_BOOT, Path("/") / SYSTEMD_BOOT):
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    raise KilnError(
        "systemd-boot (systemd-bootx64.efi) is needed for a UEFI disk",
        hint="apt-get install systemd-boot-efi on this machine",
    )


def build_esp(path: Path, spec: EspSpec, rootfs: Path, *, epoch: int, scratch: Path) -> None:
    """Create the FAT32 image at ``path`` (``spec.size`` bytes)."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C"}
    with open(path, "wb") as fh:
        fh.truncate(spec.size)
    run([tool("mkfs.vfat"), "--invariant", "-F", "32", "-n", spec.label, "-i", spec.serial,
         "-h", str(spec.hidden_sectors), str(path)], env=env)  # fmt: skip
    mmd, mcopy = tool("mmd"), tool("mcopy")
    files: dict[str, Path] = {}
    for kernel in spec.kernels:
        files[f"{kernel.esp_dir}/linux"] = kernel.vmlinuz
        files[f"{kernel.esp_dir}/initrd"] = kernel.initrd
    texts: dict[str, str] = {}
    if spec.uefi:
        files["/EFI/BOOT/BOOTX64.EFI"] = systemd_boot_binary(rootfs)
        texts["/loader/loader.conf"] = loader_conf(entry_name(spec.kernels[0]))
        for kernel in spec.kernels:
            texts[f"/loader/entries/{entry_name(kernel)}"] = boot_entry(kernel, spec.title, spec.options)
    if spec.bios:
        texts["/syslinux/syslinux.cfg"] = syslinux_cfg(spec.kernels, spec.title, spec.options)
    for name, text in texts.items():
        staged = scratch / ("esp-" + name.strip("/").replace("/", "_"))
        staged.write_text(text)
        os.utime(staged, (epoch, epoch))
        files[name] = staged
    needed = sum(p.stat().st_size for p in files.values())
    if needed > spec.size * 0.9:
        raise KilnError(f"the boot partition ({spec.size >> 20} MiB) is too small for {needed >> 20} MiB of "
                        "kernels and loaders")  # fmt: skip
    dirs = sorted({str(Path(name).parent) for name in files} - {"/"})
    for parents in _with_parents(dirs):
        run([mmd, "-i", str(path), f"::{parents}"], env=env)
    for name, source in sorted(files.items()):
        # -m keeps the source's mtime; kernels come from packages, configs are stamped with the epoch.
        run([mcopy, "-m", "-i", str(path), str(source), f"::{name}"], env=env)
    if spec.bios:
        run([tool("syslinux"), "--install", "--directory", "/syslinux", str(path)], env=env)
    _check_fat(path, env)


def _with_parents(dirs: list[str]) -> list[str]:
    """Every directory and its ancestors, parents first."""
    out: set[str] = set()
    for d in dirs:
        parts = Path(d).parts[1:]
        out.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(out, key=lambda d: (d.count("/"), d))


def _check_fat(path: Path, env: Mapping[str, str]) -> None:
    fsck = tool("fsck.vfat")
    run([fsck, "-n", str(path)], env=env)
