"""The "updates available?" check of ``when: updates-available`` (kiln.rootfs.updates.check_updates)
for an image with 300 packages against a full bookworm ``Packages`` index (target < 1 s with the index
cached), side by side with a floor: only parsing that index with python-debian.

The index is served by a local HTTP server on 127.0.0.1 as a one-suite archive (Release + Packages.xz),
so every request the check makes is real. Part of bench/pipeline.py (``--part updates``).
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CACHED_INDEX = Path("/var/tmp/kiln-test-cache/apt")
INDEX_NAME = "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"
PACKAGES = 300


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def bookworm_index(work: Path) -> bytes:
    """The full bookworm main/amd64 Packages index: apt's cached copy, else downloaded once."""
    for found in sorted(CACHED_INDEX.glob(f"*/lists/{INDEX_NAME}")):
        return found.read_bytes()
    import httpx

    url = "http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz"
    return lzma.decompress(httpx.get(url, timeout=120, follow_redirects=True).content)


def write_archive(root: Path, packages: bytes) -> None:
    binary = root / "debian/dists/bookworm/main/binary-amd64"
    binary.mkdir(parents=True)
    xz = lzma.compress(packages, preset=1)
    (binary / "Packages.xz").write_bytes(xz)
    digest = hashlib.sha256(xz).hexdigest()
    (root / "debian/dists/bookworm/Release").write_text(
        f"Suite: bookworm\nDate: {formatdate(usegmt=True)}\nSHA256:\n"
        f" {digest} {len(xz)} main/binary-amd64/Packages.xz\n"
    )


def image_packages(packages: bytes) -> list[tuple[str, str, str]]:
    """300 (name, version, arch) spread over the index; every tenth one version behind."""
    from kiln.rootfs.archive import parse_packages

    index = sorted(parse_packages(packages.decode()).items())
    step = len(index) // PACKAGES
    chosen = []
    for i, (key, (version, _)) in enumerate(index[::step][:PACKAGES]):
        name, arch = key.rsplit(":", 1)
        chosen.append((name, version if i % 10 else "0~old", arch))
    return chosen


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def run() -> None:
    from debian.deb822 import Packages

    from kiln.rootfs.archive import SuiteState
    from kiln.rootfs.updates import Installed, UpdatesReport, check_updates

    work = Path(tempfile.mkdtemp(prefix="kiln-bench-updates-"))
    try:
        packages = bookworm_index(work)
        write_archive(work / "www", packages)
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(work / "www")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sources = [f"deb http://127.0.0.1:{server.server_address[1]}/debian bookworm main"]
        image = [Installed(*p) for p in image_packages(packages)]
        cache = work / "cache"
        stale = [SuiteState(url="x", suite="bookworm", date=0, sha256="0" * 64)]

        def cold() -> UpdatesReport:
            shutil.rmtree(cache, ignore_errors=True)
            return check_updates(image, sources, cache)

        cold_s, report = timed(cold, repeat=3)
        warm_s, _ = timed(lambda: check_updates(image, sources, cache, recorded=stale))
        current = check_updates(image, sources, cache).archive
        same_s, _ = timed(lambda: check_updates(image, sources, cache, recorded=current))
        floor_s, count = timed(lambda: sum(1 for _ in Packages.iter_paragraphs(packages.decode())), repeat=3)
        server.shutdown()
        assert isinstance(report, UpdatesReport)
        size = f"{count} paragraphs, {len(packages) / 1e6:.0f} MB"
        print(f"updates check: {len(image)} packages against bookworm main/amd64 ({size}), "
              f"{len(report.updates)} outdated found; best of runs")  # fmt: skip
        print(f"{'what':<62} {'seconds':>8}")
        print(f"{'kiln: index cached (parsed, by digest), archive changed':<62} {warm_s:>8.3f}")
        print(f"{'kiln: archive unchanged since the image (Release 304/same)':<62} {same_s:>8.3f}")
        print(f"{'kiln: cold (fetch Packages.xz, decompress, parse, cache)':<62} {cold_s:>8.3f}")
        print(f"{'floor: parse the index with python-debian (deb822) only':<62} {floor_s:>8.3f}")
        print(f"target < 1 s (index cached): {'met' if warm_s < 1 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
