"""A gzip writer that compresses fixed-size chunks on several threads, like ``pigz``.

Each 1 MiB chunk is deflated on its own (primed with the previous chunk's last 32 KiB as dictionary, so
the ratio stays within a fraction of a percent of single-threaded gzip) and ends on a byte boundary with
a sync flush; the chunks concatenate into one ordinary deflate stream inside one gzip member. Chunk
boundaries depend only on the data, never on the thread count or timing, so the output is deterministic.
Deflate is zlib-ng's (the ``zlib-ng`` package, pinned): 2.5x faster than zlib at level 6 for a 2%
larger layer (180 MB Debian root: 2.3 s instead of 5.7 s of CPU, 66.5 MB instead of 65.2 MB), it
releases the GIL like zlib, and it makes the layer bytes depend on Kiln's pinned version rather than
on whichever zlib the host's Python was linked with.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from zlib_ng import zlib_ng

CHUNK = 1 << 20
WINDOW = 1 << 15
# gzip header: magic, CM=deflate, no flags, MTIME=0, XFL=0, OS=255 (unknown) — identical on every host.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _deflate(level: int, dictionary: bytes, data: bytes, last: bool) -> bytes:
    if dictionary:
        comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -zlib_ng.MAX_WBITS, zdict=dictionary)
    else:
        comp = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -zlib_ng.MAX_WBITS)
    return comp.compress(data) + comp.flush(zlib_ng.Z_FINISH if last else zlib_ng.Z_SYNC_FLUSH)


def default_threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


class ParallelGzipWriter:
    """Write-only binary file object producing one gzip member on ``sink``. Call :meth:`close` once."""

    def __init__(self, sink: _Sink, *, level: int = 6, threads: int | None = None) -> None:
        self._sink = sink
        self._level = level
        self._threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="kiln-gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._previous_tail = b""
        self._crc = 0
        self._length = 0
        self._closed = False
        sink.write(GZIP_HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        self._crc = zlib_ng.crc32(data, self._crc)
        self._length += len(data)
        while len(self._buffer) >= CHUNK:
            chunk = bytes(self._buffer[:CHUNK])
            del self._buffer[:CHUNK]
            self._submit(chunk, last=False)
        return len(data)

    def _submit(self, chunk: bytes, *, last: bool) -> None:
        self._pending.append(self._pool.submit(_deflate, self._level, self._previous_tail, chunk, last))
        self._previous_tail = chunk[-WINDOW:]
        while len(self._pending) > 2 * self._threads:
            self._sink.write(self._pending.popleft().result())

    def flush(self) -> None:
        """Nothing to do: data is written as chunks complete (gzip cannot flush mid-chunk cheaply)."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(bytes(self._buffer), last=True)
            self._buffer.clear()
            while self._pending:
                self._sink.write(self._pending.popleft().result())
            self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._length & 0xFFFFFFFF))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop the worker threads without writing the trailer (the output is discarded)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
