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
Usage: .venv/bin/python bench/vm.py [--rounds N] [--keep] [--no-mkosi]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
FLOOR = "floor: mmdebstrap + mkfs.ext4 -d + mtools"
COLD = "kiln build, cold (without VM test)"
TREE = "kiln build, cold: to the validated tree"
WARM = "kiln build, warm: page edited (no test)"
MKOSI = "mkosi, Format=directory (no initramfs)"
MKOSI_SAME = "mkosi, same tree (+ initramfs)"

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


def timed(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, sync: bool = True
) -> float:
    if sync:
        os.sync()  # the previous run's writeback must not land in this run's time
    start = time.monotonic()
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took


def floor(work: Path, debs: Path) -> float:
    """mmdebstrap of the same package set and files, then the disk by hand: the least work possible."""
    root, disk = work / "floor-root", work / "floor.raw"
    shutil.rmtree(root, ignore_errors=True)
    page = "<h1>Hello from Kiln</h1>"
    took = timed([
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
    return took + timed(["bash", "-c", FLOOR_DISK, "floor", str(root), str(disk)], sync=False)


def kiln_build(recipe: Path, env: dict[str, str], home: Path) -> dict[str, float]:
    """One `kiln build`, split by its build log: total, VM test (boot to test complete), the time to
    the validated tree (what mkosi's Format=directory produces) and the raw disk image."""
    logs = set((home / "logs").glob("*.jsonl")) if (home / "logs").is_dir() else set()
    figures = {"total": timed([str(KILN), "build", str(recipe)], env), "test": 0.0}
    [log] = set((home / "logs").glob("*.jsonl")) - logs
    events = [json.loads(line) for line in log.read_text().splitlines()]
    for event in events:
        if event.get("kind") != "end":
            continue
        if event.get("scope") == "verify":
            figures["test"] += float(event.get("duration", 0))
        if event.get("scope") == "validate":
            figures["tree"] = event["time"] - events[0]["time"]
        if str(event.get("message", "")).startswith("disk image"):
            figures["disk"] = float(event.get("duration", 0))
    return figures


def kiln_cold(work: Path, debs: Path, recipe: Path, n: int) -> tuple[dict[str, float], dict[str, str], Path]:
    """A cold build in its own data dir and cache; only the .deb files are shared, as with the floor."""
    cache, home = work / f"kiln-cache-{n}", work / f"kiln-home-{n}"
    (cache / "debs").mkdir(parents=True)
    for deb in debs.glob("*.deb"):
        os.link(deb, cache / "debs" / deb.name)
    env = {"KILN_HOME": str(home), "KILN_CACHE_DIR": str(cache), "KILN_ACCEL": "auto"}
    return kiln_build(recipe, env, home), env, home


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
    folder.mkdir(exist_ok=True)
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
    os.sync()
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return None, "mkosi failed: " + " | ".join(tail)
    if initramfs and not list((folder / "image/boot").glob("initrd.img-*")):
        return None, "mkosi's postinst script made no initramfs"
    return took, "mkosi 14, Format=directory, warm package cache (debootstrap + apt inside systemd-nspawn)"


def disk_sizes(image: dict[str, Any]) -> list[str]:
    lines = []
    for artifact in image.get("artifacts", []):
        path = Path(str(artifact["path"]))
        if path.suffix in (".raw", ".qcow2", ".vmdk", ".vhdx", ".vhd") and path.exists():
            info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                                             capture_output=True, text=True).stdout)  # fmt: skip
            lines.append(f"{path.name:<28} virtual {info['virtual-size'] / MIB:>7.0f} MiB   "
                         f"real {path.stat().st_blocks * 512 / MIB:>6.0f} MiB")  # fmt: skip
    return lines


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-vm-", dir="/var/tmp"))
    try:
        examples = work / "examples"
        shutil.copytree(REPO / "examples", examples)
        recipe = examples / "recipes/debian-vm.yaml"
        debs = work / "debs"
        debs.mkdir()
        floor(work, debs)  # untimed: fills the shared .deb cache
        # Every contestant runs once per round, in turn, so all see the same mirror and machine load.
        runs: dict[str, list[float]] = {}
        mkosi_notes: dict[str, str] = {}
        cold: dict[str, float] = {}
        env: dict[str, str] = {}
        home = work
        for n in range(rounds):
            runs.setdefault(FLOOR, []).append(floor(work, debs))
            note(FLOOR, runs[FLOOR][-1])
            cold, env, home = kiln_cold(work, debs, recipe, n)
            for key, name in (("build", COLD), ("tree", TREE), ("test", "VM test (cold)")):
                value = cold["total"] - cold["test"] if key == "build" else cold.get(key, float("nan"))
                runs.setdefault(name, []).append(value)
                note(name, value)
            if "--no-mkosi" in sys.argv:
                continue
            for initramfs, name in ((False, MKOSI), (True, MKOSI_SAME)):
                seconds, why = mkosi(work, initramfs)
                mkosi_notes[name] = why
                if seconds is not None:
                    runs.setdefault(name, []).append(seconds)
                    note(name, seconds)
        edited = recipe.with_name("debian-vm-edited.yaml")
        edited.write_text(recipe.read_text().replace("Hello from Kiln", "Hello again from Kiln"))
        warm = kiln_build(edited, env, home)
        runs[WARM] = [warm["total"] - warm["test"]]
        runs["VM test (warm)"] = [warm["test"]]

        figures = {name: median(values) for name, values in runs.items()}
        base, cold_build = figures[FLOOR], figures[COLD]
        print(f"rounds: {rounds} (every contestant once per round, in turn; medians below)")
        print(f"{'run':<46} {'seconds':>8} {'vs floor':>9} {'vs cold':>8}  rounds")
        for name, seconds in figures.items():
            each = " ".join(f"{v:.1f}" for v in runs[name])
            print(f"{name:<46} {seconds:>8.1f} {seconds / base:>8.2f}x {seconds / cold_build:>7.0%}  {each}")
        for name, why in mkosi_notes.items():
            print(f"{name}: {why}")
        print(f"raw disk image written in {cold.get('disk', float('nan')):.1f} s (last cold build)")
        show = [str(KILN), "images", "show", "debian-vm", "--json"]
        listing = subprocess.run(show, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        print("\n".join(disk_sizes(json.loads(listing.stdout))))
        tree, same_tree = figures[TREE], figures.get(MKOSI_SAME)
        versus = "n/a" if same_tree is None else f"{tree:.0f}s vs {same_tree:.0f}s"
        print(f"\ntargets: cold <= 1.3x floor ({cold_build / base:.2f}x); "
              f"warm <= 20% of cold ({figures[WARM] / cold_build:.0%}); "
              f"faster than mkosi on the same tree ({versus}); "
              f"boot test < 60 s ({figures['VM test (cold)']:.0f}s)")  # fmt: skip
    finally:
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
