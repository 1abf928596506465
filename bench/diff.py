"""Benchmark: the file-level diff of two ~200 MB images (``kiln diff``'s files section).

Generates a root of ~200 MB (seeded: 8,000 files, half incompressible like binaries, half text), and
a second version with 2% of files rewritten, 1% deleted, 1% added and 0.5% chmodded, written as real
Kiln layers in OCI layouts in two shapes: each image one full layer (nothing shared: the worst case),
and the second image as the first's layer plus an upper layer with whiteouts (a component's layer).
Times :func:`kiln.diffing.tree.trees` + :func:`~kiln.diffing.tree.diff_trees` (every layer read,
every file hashed) side by side with the issue's target (< 5 s) and a floor that reads no content:
``tar tvzf`` listings of both images' layers and ``diff`` of the listings.
Usage: .venv/bin/python bench/diff.py [--megabytes 200] [--files 8000] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from kiln.diffing.tree import diff_trees, layout_layers, trees
from kiln.layers.tar import write_layer
from kiln.outputs.oci import History, ImageConfig, OciImage, write_oci_layout

EPOCH = 1_700_000_000
TARGET_S = 5.0
WORDS = b"the quick brown fox jumps over the lazy dog while kiln bakes golden images again and again "


def content(rng: random.Random, size: int) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return (WORDS * (size // len(WORDS) + 1))[:size]


def make_root(root: Path, megabytes: int, files: int, rng: random.Random) -> list[Path]:
    average = megabytes * 2**20 // files
    paths = []
    for i in range(files):
        path = root / f"usr/lib/d{i % 97:02d}/s{i % 13}/f{i:05d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(rng, max(1, int(rng.expovariate(1 / average)))))
        paths.append(path)
    return paths


def layout(dest: Path, layers: list[tuple[Path, str]]) -> OciImage:
    blobs = [write_layer(src, dest / f"blobs/{i}.tar.gz", epoch=EPOCH, kind=kind)  # type: ignore[arg-type]
             for i, (src, kind) in enumerate(layers)]  # fmt: skip
    config = ImageConfig(created=datetime.fromtimestamp(EPOCH, UTC))
    return write_oci_layout(dest / "oci", blobs, config, history=[History(str(i)) for i in range(len(blobs))],
                            annotations={}, tag="t")  # fmt: skip


def timed(fn: object, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def floor(a: OciImage, b: OciImage, work: Path) -> float:
    """``tar tvzf`` of every layer of both images, then ``diff`` of the two listings."""
    start = time.perf_counter()
    for name, image in (("a", a), ("b", b)):
        with open(work / f"{name}.txt", "wb") as out:
            for layer in image.layers:
                subprocess.run(["tar", "tvzf", str(layer.path)], stdout=out, check=True)
    subprocess.run(["diff", str(work / "a.txt"), str(work / "b.txt")], stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    rng = random.Random(6)
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-diff-", dir="/var/tmp"))
    try:
        start = time.perf_counter()
        root_a, root_b, upper = work / "a", work / "b", work / "upper"
        paths = make_root(root_a, args.megabytes, args.files, rng)
        shutil.copytree(root_a, root_b, copy_function=os.link)
        upper.mkdir()
        for path in rng.sample(paths, len(paths) // 50):  # rewritten
            rel = path.relative_to(root_a)
            data = content(rng, path.stat().st_size)
            for target in (root_b / rel, upper / rel):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                target.write_bytes(data)
        for path in rng.sample(paths, len(paths) // 100):  # deleted (a whiteout in the upper layer)
            rel = path.relative_to(root_a)
            if (upper / rel).exists():
                continue
            (root_b / rel).unlink()
            (upper / rel).parent.mkdir(parents=True, exist_ok=True)
            os.mknod(upper / rel, 0o600 | 0o020000, os.makedev(0, 0))
        for i in range(len(paths) // 100):  # added
            data = content(rng, 20_000)
            for base in (root_b, upper):
                (base / f"opt/new/n{i:04d}").parent.mkdir(parents=True, exist_ok=True)
                (base / f"opt/new/n{i:04d}").write_bytes(data)
        for path in rng.sample(paths, len(paths) // 200):  # chmodded
            rel = path.relative_to(root_a)
            if not (root_b / rel).exists() or (upper / rel).exists():
                continue
            data = (root_b / rel).read_bytes()
            for target in (root_b / rel, upper / rel):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                target.write_bytes(data)
                target.chmod(0o600)
        a = layout(work / "img-a", [(root_a, "rootfs")])
        b_full = layout(work / "img-b", [(root_b, "rootfs")])
        b_layered = layout(work / "img-b2", [(root_a, "rootfs"), (upper, "upper")])
        size = sum(p.stat().st_size for p in root_a.rglob("*") if p.is_file()) / 2**20
        print(f"generated a {size:.0f} MiB root of {args.files} files and its second version "
              f"in {time.perf_counter() - start:.1f} s "
              f"(layers: {a.layers[0].size / 2**20:.0f} MiB gzip)")  # fmt: skip
        print(f"\n{'case':<44} {'changes':>8} {'kiln s':>8} {'floor s':>8} {'target s':>9}  ok")
        for label, other in (("two full layers (nothing shared)", b_full),
                             ("shared base + upper layer with whiteouts", b_layered)):  # fmt: skip
            seconds, changes = timed(
                lambda o=other: diff_trees(*trees(layout_layers(a.path), layout_layers(o.path))), args.repeat
            )
            lower = floor(a, other, work)
            ok = "yes" if seconds < TARGET_S else "NO"
            print(f"{label:<44} {len(changes):>8} {seconds:>8.2f} {lower:>8.2f} {TARGET_S:>9.1f}  {ok}")  # type: ignore[arg-type]
        print("(floor: tar tvzf of both images' layers + diff of the listings; it reads no file content)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
