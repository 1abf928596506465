"""Deterministic plain tar archives assembled from files, bytes and streams (for OCI and Docker archives).

Entries are written in the order given (callers sort), owned by 0:0 with no user/group names, mode
0644/0755 and one fixed mtime; the archive is written to a temporary file next to its destination,
hashed on the way, and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

COPY_BUFSIZE = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A finished archive file."""

    path: Path
    digest: str
    """``sha256:<hex>`` of the archive file."""
    size: int


class _Hashing:
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        return self.sink.write(data)

    def tell(self) -> int:
        return self.count


class DeterministicTar:
    """``with DeterministicTar(dest, epoch) as tar: tar.add_bytes(...)``; ``tar.result`` afterwards."""

    def __init__(self, dest: Path, epoch: int) -> None:
        self.dest = dest
        self.epoch = max(0, epoch)
        self.result: Archive | None = None

    def __enter__(self) -> DeterministicTar:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".part", dir=self.dest.parent)
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._sink = _Hashing(self._file)
        self._tar = tarfile.TarFile(
            fileobj=self._sink,  # type: ignore[arg-type]
            mode="w",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            copybufsize=COPY_BUFSIZE,
        )
        return self

    def _info(self, name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = self.epoch
        return info

    def add_dir(self, name: str) -> None:
        self._tar.addfile(self._info(name, tarfile.DIRTYPE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._tar.addfile(self._info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def add_stream(self, name: str, size: int, stream: IO[bytes]) -> None:
        """Add ``size`` bytes read from ``stream`` (tarfile raises if the stream ends early)."""
        self._tar.addfile(self._info(name, tarfile.REGTYPE, size), stream)

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self.add_stream(name, os.fstat(fh.fileno()).st_size, fh)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self._tar.close()
            self._file.close()
            if exc_type is None:
                self._tmp.chmod(0o644)
                self._tmp.replace(self.dest)
                self.result = Archive(self.dest, "sha256:" + self._sink.hash.hexdigest(), self._sink.count)
        finally:
            if self.result is None:
                self._file.close()
                self._tmp.unlink(missing_ok=True)
