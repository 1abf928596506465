"""Deterministic gzip layer tars, written in one streaming pass.

The same tree gives the same bytes: entries sorted bytewise by path, mtimes clamped to the epoch
(SOURCE_DATE_EPOCH), numeric uid/gid only, PAX format, gzip header with mtime 0 and no file name. The
uncompressed stream is hashed on the way into zlib (``diff_id``) and the compressed stream on the way to
disk (``digest``), so memory stays constant whatever the layer size.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from kiln.layers.pgzip import ParallelGzipWriter
from kiln.layers.walk import Entry, LayerError, LayerKind, scan

COPY_BUFSIZE = 1 << 20
PROGRESS_STEP = 8 << 20  # bytes between two progress reports
_TAR_TYPES = {
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
}


@dataclass(frozen=True)
class LayerBlob:
    """A finished layer: the ``.tar.gz`` file with its OCI digests."""

    path: Path
    digest: str
    """``sha256:<hex>`` of the gzip bytes (the blob digest)."""
    diff_id: str
    """``sha256:<hex>`` of the uncompressed tar (the config's ``rootfs.diff_ids``)."""
    size: int
    """Size of the gzip file in bytes."""


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``sink``."""

    def __init__(
        self, sink: IO[bytes] | ParallelGzipWriter, on_count: Callable[[int], None] | None = None
    ) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.count = 0
        self.on_count = on_count  # told the count every PROGRESS_STEP bytes

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        before = self.count
        self.count += len(data)
        self.sink.write(data)
        if self.on_count is not None and before // PROGRESS_STEP != self.count // PROGRESS_STEP:
            self.on_count(self.count)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _tarinfo(entry: Entry, epoch: int) -> tarfile.TarInfo:
    st = entry.st
    info = tarfile.TarInfo(entry.name)
    info.mode = st.st_mode & 0o7777
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = max(0, min(int(st.st_mtime), epoch))
    if entry.type == "whiteout":
        info.type, info.size, info.mode = tarfile.REGTYPE, 0, 0
    elif entry.type == "file":
        info.type, info.size = tarfile.REGTYPE, st.st_size
    else:
        info.type = _TAR_TYPES[entry.type]
    if entry.type == "symlink":
        # os.readlink, not Path.readlink: a Path would normalise the target ("a/" -> "a").
        info.linkname = os.readlink(entry.path)  # noqa: PTH115
    elif entry.type in ("chr", "blk"):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    # Binary values survive as surrogate escapes; tarfile then writes hdrcharset=BINARY.
    info.pax_headers = {
        "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
        for key, value in sorted(entry.xattrs.items())
    }
    return info


def _add_all(tar: tarfile.TarFile, entries: Iterable[Entry], epoch: int) -> None:
    first_link: dict[tuple[int, int], str] = {}
    for entry in entries:
        info = _tarinfo(entry, epoch)
        if entry.type == "file" and entry.st.st_nlink > 1:
            inode = (entry.st.st_dev, entry.st.st_ino)
            target = first_link.setdefault(inode, entry.name)
            if target != entry.name:
                info.type, info.size, info.linkname = tarfile.LNKTYPE, 0, target
                info.pax_headers = {}
        if info.type == tarfile.REGTYPE and info.size:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                tar.addfile(info, fh)
        else:
            tar.addfile(info)


def _write_tar(tar_sink: _HashingWriter, entries: list[Entry], epoch: int) -> None:
    tar = tarfile.TarFile(
        fileobj=tar_sink,  # type: ignore[arg-type]
        mode="w",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
        copybufsize=COPY_BUFSIZE,
    )
    with tar:
        _add_all(tar, entries, epoch)


def write_layer(
    source: Path,
    dest: Path,
    *,
    epoch: int,
    kind: Literal["rootfs", "upper"],
    compresslevel: int = 6,
    threads: int | None = None,
    compress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> LayerBlob:
    """Write ``source`` (a whole root, or an overlayfs upper dir) as a deterministic ``.tar.gz`` at ``dest``.

    ``kind="rootfs"``: a complete root (layer 0); device nodes under ``dev/`` and the contents of
    ``proc/`` and ``sys/`` are left out. ``kind="upper"``: overlay whiteouts and opaque directories
    become OCI whiteouts. The file appears at ``dest`` only when complete. ``threads`` (default: the
    CPUs available) only changes the speed, never the bytes. ``compress=False`` writes a plain tar
    (then ``digest == diff_id``). ``on_progress(done, total)`` is told the uncompressed bytes written
    of the files' total size every few MiB (a progress display's; it never changes the bytes).
    """
    if not 0 <= compresslevel <= 9:
        raise LayerError(f"gzip compression level must be 0-9, not {compresslevel}")
    layer_kind: LayerKind = kind
    entries = scan(source, layer_kind)
    counted: Callable[[int], None] | None = None
    if on_progress is not None:
        total = sum(e.st.st_size for e in entries if e.type == "file")
        counted = lambda done: on_progress(min(done, total), total)  # noqa: E731
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            written = _HashingWriter(raw)
            if compress:
                gz = ParallelGzipWriter(written, level=compresslevel, threads=threads)
                try:
                    plain = _HashingWriter(gz, counted)
                    _write_tar(plain, entries, epoch)
                    gz.close()
                finally:
                    gz.abort()
            else:
                plain = written
                plain.on_count = counted
                _write_tar(plain, entries, epoch)
        tmp.chmod(0o644)
        tmp.replace(dest)
        if counted is not None:
            counted(plain.count)  # the last report says it is all written
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return LayerBlob(path=dest, digest=written.digest, diff_id=plain.digest, size=written.count)
