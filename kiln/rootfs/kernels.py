"""A bootstrapped root's initramfs, made once instead of once per package that asks for it.

Debian's kernel postinst hooks (initramfs-tools, dracut) build the initramfs as soon as the kernel is
configured, and each later package that ships an initramfs hook (udev, zstd, ...) rebuilds it through
a dpkg trigger. For the example VM parent (initramfs-tools, linux-image-amd64, systemd-sysv, udev,
zstd) that made mmdebstrap take 50.6 s on the 2-core build machines; with the initramfs made once at
the end it took 33.2 s, for a bit-identical initramfs and tree.

So, as in mkosi, packages are installed with ``INITRD=No`` (both hooks honour it, and a trigger's
``update-initramfs -u`` finds nothing to update). Unlike mkosi's trees, the root still gets its
initramfs: afterwards each kernel's postinst hooks run once more with it allowed, and the
``/initrd.img`` symlinks are set as the kernel's postinst would have set them. Later package installs
(components) run with Debian's defaults, so a kernel upgrade there gets its initramfs the usual way.
"""

from __future__ import annotations

import time
from pathlib import Path

from kiln.monitor import Event, Monitor
from kiln.sandbox.bwrap import SandboxOptions
from kiln.sandbox.launch import run_in_sandbox

DEFER_INITRAMFS = {"INITRD": "No"}
"""Environment for package installs that leave the initramfs to :func:`make_initramfs`."""


def kernel_versions(root: Path) -> list[str]:
    """Versions of the kernels installed in ``root`` (``/boot/vmlinuz-VERSION``)."""
    boot = root / "boot"
    return sorted(p.name.removeprefix("vmlinuz-") for p in boot.glob("vmlinuz-*") if p.is_file())


def make_initramfs(root: Path, epoch: int, monitor: Monitor) -> list[str]:
    """Run the postinst hooks of each kernel that has no initramfs yet; returns those versions.

    Nothing happens without a kernel or without ``/etc/kernel/postinst.d`` (no initramfs generator).
    """
    if not (root / "etc/kernel/postinst.d").is_dir():
        return []
    versions = [v for v in kernel_versions(root) if not (root / f"boot/initrd.img-{v}").exists()]
    options = SandboxOptions(
        network=False, env={"SOURCE_DATE_EPOCH": str(epoch), "DEB_MAINT_PARAMS": "configure"}
    )

    def forward(stream: str, line: str) -> None:
        monitor.emit(Event("output", scope="parent", message=line, data={"stream": stream}))

    for version in versions:
        started = time.monotonic()
        image = f"/boot/vmlinuz-{version}"
        hooks = ["run-parts", "--report", "--exit-on-error", f"--arg={version}", f"--arg={image}",
                 "/etc/kernel/postinst.d"]  # fmt: skip
        run_in_sandbox(root, hooks, options, on_output=forward)
        made = (root / f"boot/initrd.img-{version}").exists()
        if made and (root / "usr/bin/linux-update-symlinks").exists():
            symlinks = ["linux-update-symlinks", "install", version, image]
            run_in_sandbox(root, symlinks, options, on_output=forward)
        outcome = "initramfs made" if made else "postinst hooks ran (no initramfs generator installed)"
        took = time.monotonic() - started
        monitor.info(f"kernel {version}: {outcome} once, after every package ({took:.1f} s)")
    return versions
