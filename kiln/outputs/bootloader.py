"""What a bootable disk needs from the image root (kernels, initramfs, init) and the loader configs.

Kernels and initramfs come from the image's own packages (``/boot/vmlinuz-*``, ``/boot/initrd.img-*``);
the loaders are systemd-boot (UEFI) and SYSLINUX on the FAT boot partition (BIOS).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from kiln.errors import KilnError

NO_KERNEL_HINT = "install linux-image-amd64 and systemd-sysv in a component of the recipe"


@dataclass(frozen=True)
class Kernel:
    version: str
    vmlinuz: Path
    initrd: Path

    @property
    def esp_dir(self) -> str:
        """Where the kernel lives on the boot partition (Boot Loader Specification style)."""
        return f"/kiln/{self.version}"


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def find_kernels(rootfs: Path) -> list[Kernel]:
    """Kernels installed in ``rootfs``, newest first; a clear error when a VM disk cannot boot it."""
    boot = rootfs / "boot"
    found = sorted(
        (p for p in boot.glob("vmlinuz-*") if _regular(p)),
        key=lambda p: Version(p.name.removeprefix("vmlinuz-")),
        reverse=True,
    )
    if not found:
        raise KilnError("a disk output needs a kernel, but the image root has no /boot/vmlinuz-*",
                        hint=NO_KERNEL_HINT)  # fmt: skip
    kernels = []
    for vmlinuz in found:
        version = vmlinuz.name.removeprefix("vmlinuz-")
        initrd = boot / f"initrd.img-{version}"
        if not _regular(initrd):
            raise KilnError(
                f"kernel {version} has no initramfs (/boot/initrd.img-{version})",
                hint="install initramfs-tools in the image (it builds the initramfs for each kernel)",
            )
        kernels.append(Kernel(version, vmlinuz, initrd))
    if not any((rootfs / p).exists() or (rootfs / p).is_symlink() for p in ("sbin/init", "usr/sbin/init")):
        raise KilnError("the image root has a kernel but no /sbin/init", hint=NO_KERNEL_HINT)
    return kernels


def os_title(rootfs: Path) -> str:
    """PRETTY_NAME from the image's os-release (read without following links out of the root)."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = rootfs / rel
        if _regular(path):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("PRETTY_NAME="):
                    value = shlex.split(line.partition("=")[2]) or [""]
                    return value[0] or "Linux"
    return "Linux"


def check_cmdline(cmdline: str) -> str:
    """Kernel command line as one line of printable text (it goes into loader config files)."""
    if not re.fullmatch(r"[\x20-\x7e]*", cmdline):
        raise KilnError("kernel_cmdline must be one line of printable ASCII text")
    return " ".join(cmdline.split())


def loader_conf(default_entry: str) -> str:
    # editor no: a golden image should not let anyone at the console add init=/bin/sh.
    return f"default {default_entry}\ntimeout 0\neditor no\nconsole-mode keep\n"


def boot_entry(kernel: Kernel, title: str, options: str) -> str:
    """A Boot Loader Specification type 1 entry for systemd-boot."""
    return (
        f"title {title}\nversion {kernel.version}\nsort-key kiln\n"
        f"linux {kernel.esp_dir}/linux\ninitrd {kernel.esp_dir}/initrd\noptions {options}\n"
    )


def entry_name(kernel: Kernel) -> str:
    return f"kiln-{kernel.version}.conf"


def syslinux_cfg(kernels: list[Kernel], title: str, options: str) -> str:
    lines = ["DEFAULT k0", "PROMPT 0", "TIMEOUT 0", ""]
    for index, kernel in enumerate(kernels):
        lines += [
            f"LABEL k{index}",
            f"  MENU LABEL {title} ({kernel.version})",
            f"  LINUX {kernel.esp_dir}/linux",
            f"  INITRD {kernel.esp_dir}/initrd",
            f"  APPEND {options}",
            "",
        ]
    return "\n".join(lines)
