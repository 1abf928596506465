#!/usr/bin/env python3
"""VM image benchmark, side by side in one run:

- the floor: a hand-written script doing the same job with mmdebstrap + mkfs.ext4 -d + mtools
  (kernel, systemd, nginx, curl, hello page, enabled service, UEFI disk with systemd-boot);
- `kiln build examples/recipes/debian-vm.yaml` cold, then warm with one component changed (the page's
  greeting), each split into build time and the VM test boot (boot-to-test-complete under TCG);
- mkosi (Debian's package) building the same packages with Format=directory (its disk formats mount
  the ESP's vfat, which kernels without vfat cannot do); if it cannot run, why. mkosi installs
  packages with INITRD=No, so its tree has no initramfs; a second run adds one with a mkosi.postinst
  script, which makes it the same tree Kiln builds, and that is the one compared with Kiln's time to
  its validated tree;
- the disk's virtual and real sizes.

Every run shares one warm .deb cache, so the figures compare work done, not download speed.
Usage: .venv/bin/python bench/vm.py [--keep] [--no-mkosi]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILN = REPO / ".venv/bin/kiln"
MIRROR = "http://deb.debian.org/debian"
SOURCES = [
    f"deb {MIRROR} bookworm main",
    f"deb {MIRROR} bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
PACKAGES = "initramfs-tools,linux-image-amd64,systemd-sysv,udev,zstd,nginx,curl,ca-certificates"
MIB = 1 << 20

FLOOR_DISK = r"""
set -euo pipefail
R=$1 OUT=$2
KVER=$(ls "$R"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
USED=$(du -sm "$R" | cut -f1); ROOT_MB=$((USED * 12 / 10 + 512)); ESP_MB=256
truncate -s $((ROOT_MB + ESP_MB + 2))M "$OUT"
printf 'label: gpt\nstart=1MiB, size=%sMiB, type=U, name=esp\nstart=%sMiB, size=%sMiB, type=L, name=root\n' \
  $ESP_MB $((ESP_MB + 1)) $ROOT_MB | sfdisk -q "$OUT"
ESP=$OUT.esp; truncate -s ${ESP_MB}M "$ESP"; mkfs.vfat -F 32 -n ESP "$ESP" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/debian
mcopy -i "$ESP" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" "$R/boot/vmlinuz-$KVER" ::/debian/vmlinuz
mcopy -i "$ESP" "$R/boot/initrd.img-$KVER" ::/debian/initrd.img
printf 'default debian.conf\ntimeout 0\n' | mcopy -i "$ESP" - ::/loader/loader.conf
printf 'title Debian\nlinux /debian/vmlinuz\ninitrd /debian/initrd.img\n%s\n' \
  'options root=PARTLABEL=root rw console=ttyS0' | mcopy -i "$ESP" - ::/loader/entries/debian.conf
dd if="$ESP" of="$OUT" bs=1M seek=1 conv=notrunc,sparse status=none; rm -f "$ESP"
mkfs.ext4 -q -F -L root -E offset=$(((1 + ESP_MB) * 1024 * 1024)) -d "$R" "$OUT" ${ROOT_MB}M
"""

MKOSI_CONF = f"""[Distribution]
Distribution=debian
Release=bookworm

[Output]
Format=directory
Output=image
Bootable=no

[Content]
Packages={PACKAGES}
"""


def note(name: str, seconds: float) -> None:
    """Each figure as soon as it is measured (a later failure keeps the earlier ones)."""
    print(f"  measured: {name}: {seconds:.1f} s", file=sys.stderr, flush=True)


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, cwd=cwd)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took


def floor(work: Path, debs: Path) -> float:
    """mmdebstrap of the same package set and files, then the disk by hand: the least work possible."""
    root, disk = work / "floor-root", work / "floor.raw"
    shutil.rmtree(root, ignore_errors=True)
    page = "<h1>Hello from Kiln</h1>"
    start = time.monotonic()
    timed([
        "mmdebstrap", "--variant=minbase", "--mode=root", "--skip=essential/unlink",
        "--skip=cleanup/apt/cache", f"--include={PACKAGES}",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
        f"--setup-hook=sync-in {debs} /var/cache/apt/archives",
        f"--customize-hook=sync-out /var/cache/apt/archives {debs}",
        '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
        f"--customize-hook=echo '{page}' > \"$1\"/var/www/html/index.html",
        '--customize-hook=: > "$1"/etc/machine-id',
        "bookworm", str(root), *SOURCES,
    ])  # fmt: skip
    timed(["bash", "-c", FLOOR_DISK, "floor", str(root), str(disk)])
    return time.monotonic() - start


STAGES: dict[str, float] = {}


def kiln_build(recipe: Path, env: dict[str, str], home: Path) -> tuple[float, float, dict[str, object]]:
    """(total seconds, seconds of the VM test stage, the image's JSON) for one `kiln build`.

    Also notes, from the build log, how long Kiln took to reach the validated tree (what mkosi's
    Format=directory produces) and to write the disk image.
    """
    logs = set((home / "logs").glob("*.jsonl")) if (home / "logs").is_dir() else set()
    total = timed([str(KILN), "build", str(recipe)], env)
    [log] = set((home / "logs").glob("*.jsonl")) - logs
    test = 0.0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    for event in events:
        if event.get("kind") == "end" and event.get("scope") == "verify":
            test += float(event.get("duration", 0))
        if event.get("kind") == "end" and event.get("scope") == "validate":
            STAGES[f"{recipe.stem}: to the validated tree"] = event["time"] - events[0]["time"]
        if event.get("kind") == "end" and str(event.get("message", "")).startswith("disk image"):
            STAGES[f"{recipe.stem}: disk image (raw)"] = float(event.get("duration", 0))
    shown = subprocess.run([str(KILN), "images", "show", "debian-vm", "--json"], env={**os.environ, **env},
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return total, test, json.loads(shown)


MKOSI_POSTINST = """#!/bin/sh
# mkosi installs packages with INITRD=No: make the initramfs a bootable tree needs, as Kiln's has.
set -e
for version in $(ls /lib/modules); do
    update-initramfs -c -k "$version"
    linux-update-symlinks install "$version" "/boot/vmlinuz-$version"
done
"""


def mkosi(work: Path, initramfs: bool) -> tuple[float | None, str]:
    """mkosi's directory tree of the same packages; with ``initramfs``, plus the kernel's initramfs
    (mkosi itself leaves it out of directory trees), which makes it the same tree Kiln builds."""
    if not shutil.which("mkosi"):
        return None, "mkosi is not installed (apt-get install mkosi)"
    folder = work / ("mkosi-initramfs" if initramfs else "mkosi")
    folder.mkdir()
    (folder / "mkosi.conf").write_text(MKOSI_CONF)
    if initramfs:
        script = folder / "mkosi.postinst"
        script.write_text(MKOSI_POSTINST)
        script.chmod(0o755)
    # --nspawn-keep-unit: systemd-nspawn only works here without registering a scope unit;
    # --with-docs: mkosi's doc removal runs rm -rf inside nspawn, which refuses on this host.
    # --cache: a package cache of its own, warmed by an untimed first run, as Kiln's and the floor's are.
    cache = work / "mkosi-cache"
    argv = ["mkosi", "--force", "--nspawn-keep-unit", "--with-docs", "--cache", str(cache), "build"]
    if not cache.exists():
        cache.mkdir()
        subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return None, "mkosi failed: " + " | ".join(tail)
    if initramfs and not list((folder / "image/boot").glob("initrd.img-*")):
        return None, "mkosi's postinst script made no initramfs"
    return took, "mkosi 14, Format=directory, warm package cache (debootstrap + apt inside systemd-nspawn)"


def disk_sizes(image: dict[str, object]) -> list[str]:
    lines = []
    for artifact in image.get("artifacts", []):  # type: ignore[union-attr]
        path = Path(str(artifact["path"]))  # type: ignore[index]
        if path.suffix in (".raw", ".qcow2", ".vmdk", ".vhdx", ".vhd") and path.exists():
            info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                                             capture_output=True, text=True).stdout)  # fmt: skip
            lines.append(f"{path.name:<28} virtual {info['virtual-size'] / MIB:>7.0f} MiB   "
                         f"real {path.stat().st_blocks * 512 / MIB:>6.0f} MiB")  # fmt: skip
    return lines


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-vm-", dir="/var/tmp"))
    try:
        examples = work / "examples"
        shutil.copytree(REPO / "examples", examples)
        recipe = examples / "recipes/debian-vm.yaml"
        debs = work / "debs"
        debs.mkdir()
        floor(work, debs)  # untimed: fills the shared .deb cache
        figures: dict[str, float] = {"floor: mmdebstrap + mkfs.ext4 -d + mtools": floor(work, debs)}
        cache = work / "kiln-cache"
        (cache / "debs").mkdir(parents=True)
        for deb in debs.glob("*.deb"):
            os.link(deb, cache / "debs" / deb.name)
        home = work / "kiln-home"
        env = {"KILN_HOME": str(home), "KILN_CACHE_DIR": str(cache), "KILN_ACCEL": "auto"}
        note("floor", figures["floor: mmdebstrap + mkfs.ext4 -d + mtools"])
        total, test, image = kiln_build(recipe, env, home)
        note("kiln cold (total, VM test)", total)
        note("kiln cold VM test", test)
        figures["kiln build, cold (without VM test)"] = total - test
        boots = {"cold": test}
        edited = recipe.with_name("debian-vm-edited.yaml")
        edited.write_text(recipe.read_text().replace("Hello from Kiln", "Hello again from Kiln"))
        total, test, _ = kiln_build(edited, env, home)
        note("kiln warm (total)", total)
        note("kiln warm VM test", test)
        figures["kiln build, warm: page edited (no test)"] = total - test
        boots["warm"] = test
        mkosi_notes: list[str] = []
        for initramfs, name in ((False, "mkosi, Format=directory (no initramfs)"),
                                (True, "mkosi, same tree (+ initramfs)")):  # fmt: skip
            seconds, why = (
                (None, "skipped (--no-mkosi)") if "--no-mkosi" in sys.argv else mkosi(work, initramfs)
            )
            mkosi_notes.append(f"{name}: {why}")
            if seconds is not None:
                figures[name] = seconds
                note(name, seconds)
        tree = STAGES.get("debian-vm: to the validated tree")
        if tree is not None:
            figures["kiln: to the validated tree (cold)"] = tree

        base = figures["floor: mmdebstrap + mkfs.ext4 -d + mtools"]
        cold = figures["kiln build, cold (without VM test)"]
        print(f"{'run':<44} {'seconds':>8} {'vs floor':>9} {'vs cold':>8}")
        for name, seconds in figures.items():
            print(f"{name:<44} {seconds:>8.1f} {seconds / base:>8.2f}x {seconds / cold:>7.0%}")
        print(
            f"{'VM test boot-to-test-complete (cold, warm)':<44} {boots['cold']:>8.1f} {boots['warm']:>9.1f}"
        )
        print("\n".join(mkosi_notes))
        for name, seconds in STAGES.items():
            print(f"  {name:<42} {seconds:>8.1f}")
        print("\n".join(disk_sizes(image)))
        warm = figures["kiln build, warm: page edited (no test)"]
        same_tree = figures.get("mkosi, same tree (+ initramfs)")
        versus = "n/a" if same_tree is None or tree is None else f"{tree:.0f}s vs {same_tree:.0f}s"
        print(f"\ntargets: cold <= 1.3x floor ({cold / base:.2f}x); warm <= 20% of cold ({warm / cold:.0%}); "
              f"faster than mkosi on the same tree ({versus}); "
              f"boot test < 60 s ({boots['cold']:.0f}s)")  # fmt: skip
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
