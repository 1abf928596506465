"""A real Debian-format repository for tests: real .debs, indices made by ``apt-ftparchive``, served
over HTTP on 127.0.0.1 with ETags (and 304 answers), and every request logged.

Unsigned: apt sources use ``[trusted=yes]`` (the recipe's ``mirror`` takes apt options in brackets).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

from tests.loopback import http_server

ARCH = "amd64"


class DebRepo:
    def __init__(self, root: Path, suite: str = "bookworm") -> None:
        self.root = root
        self.suite = suite
        self.pool = root / "pool/main"
        self.pool.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, int]] = []  # (path, status) of every request served
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/debian"

    @property
    def mirror(self) -> str:
        """The recipe's ``mirror``: the URL with the apt option that accepts an unsigned repository."""
        return f"[trusted=yes] {self.url}"

    def add(self, debs: Iterable[Path]) -> None:
        for deb in debs:
            target = self.pool / deb.name
            if not target.exists():
                try:
                    os.link(deb, target)
                except OSError:
                    shutil.copy2(deb, target)

    def publish(self) -> None:
        """(Re)write the suite's Packages (plain and .xz) and Release with apt-ftparchive."""
        binary = self.root / f"debian/dists/{self.suite}/main/binary-{ARCH}"
        binary.mkdir(parents=True, exist_ok=True)
        packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=self.root, check=True,
                                  capture_output=True).stdout  # fmt: skip
        (binary / "Packages").write_bytes(packages)
        (binary / "Packages.xz").write_bytes(lzma.compress(packages))
        dists = self.root / f"debian/dists/{self.suite}"
        (dists / "Release").unlink(missing_ok=True)
        release = subprocess.run(
            ["apt-ftparchive", f"-oAPT::FTPArchive::Release::Suite={self.suite}",
             f"-oAPT::FTPArchive::Release::Codename={self.suite}", f"-oAPT::FTPArchive::Release::Architectures={ARCH}",
             "-oAPT::FTPArchive::Release::Components=main", "release", "."],
            cwd=dists, check=True, capture_output=True,
        ).stdout  # fmt: skip
        (dists / "Release").write_bytes(release)
        pool_link = self.root / "debian/pool"
        if not pool_link.exists():
            pool_link.symlink_to(self.root / "pool")

    def served(self, suffix: str) -> list[int]:
        """Statuses of the requests whose path ends with ``suffix``."""
        return [status for path, status in self.requests if path.endswith(suffix)]

    @contextmanager
    def serve(self) -> Iterator[DebRepo]:
        repo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = (repo.root / unquote(self.path.lstrip("/").split("?")[0])).resolve()
                if not path.is_relative_to(repo.root.resolve()) or not path.is_file():
                    repo.requests.append((self.path, 404))
                    self.send_error(404)
                    return
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    repo.requests.append((self.path, 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                repo.requests.append((self.path, 200))
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return None

        with http_server(Handler) as self.port:
            yield self


def rebuilt_deb(deb: Path, version: str, out: Path) -> Path:
    """A copy of ``deb`` with another version (its files unchanged): a 'new upload' to the archive."""
    work = out / f"unpacked-{version}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(work)], check=True)
    control = work / "DEBIAN/control"
    lines = [
        f"Version: {version}" if line.startswith("Version:") else line
        for line in control.read_text().splitlines()
    ]
    control.write_text("\n".join(lines) + "\n")
    name = next(line.split(": ", 1)[1] for line in lines if line.startswith("Package:"))
    arch = next(line.split(": ", 1)[1] for line in lines if line.startswith("Architecture:"))
    target = out / f"{name}_{version.split(':')[-1]}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(work), str(target)], check=True,
                   capture_output=True)  # fmt: skip
    shutil.rmtree(work)
    return target
