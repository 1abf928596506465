"""Read a user's input file (recipe, component document) without hanging, crashing or eating memory.

Only regular files are read: a FIFO would block ``open`` or ``read`` forever, a device can be endless
(``/dev/zero``) or have side effects, a directory or socket cannot be read. The path is checked with
``stat`` before it is opened, then opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the
open descriptor, so swapping the file for a FIFO in between cannot make Kiln wait. At most
:data:`MAX_INPUT_BYTES` are read. The text must be UTF-8 without NUL bytes; a bad byte is reported
with its line and column.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kiln.errors import Issue, ValidationFailed, display_path

# Real recipes and component documents are a few KiB (AWS Image Builder takes inline component data
# of at most 16,000 characters); 512 KiB leaves room and keeps the slowest YAML (long block scalars,
# ruamel parses ~100,000 lines a second here) around a second.
MAX_INPUT_BYTES = 512 << 10

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _fail(name: str, message: str, line: int | None = None, column: int | None = None) -> ValidationFailed:
    return ValidationFailed([Issue(name, line, column, "", message)])


def _check_regular(name: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise _fail(name, f"{kind}, not a regular file: only regular files are read")


def _size_message(size: int, limit: int) -> str:
    return f"file is larger than {limit // 1024} KiB ({size} bytes or more); refusing to read it"


def read_input_bytes(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); ValidationFailed otherwise."""
    name = display_path(path)
    try:
        _check_regular(name, path.stat().st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _fail(name, "file not found") from None
    except OSError as exc:
        raise _fail(name, f"cannot read file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        _check_regular(name, info.st_mode)  # replaced between stat and open
        if info.st_size > limit:
            raise _fail(name, _size_message(info.st_size, limit))
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise _fail(name, f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if total > limit:  # the file grew while it was read
        raise _fail(name, _size_message(total, limit))
    return b"".join(chunks)


def position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of byte ``offset``; the column counts characters, not bytes."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def decode_text(name: str, raw: bytes) -> str:
    """``raw`` as UTF-8 text (a leading byte-order mark is dropped); NULs and bad bytes are errors."""
    nul = raw.find(b"\0")
    if nul >= 0:
        line, column = position(raw, nul)
        raise _fail(name, "contains a NUL byte: a binary file, or text not in UTF-8", line, column)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line, column = position(raw, exc.start)
        byte = raw[exc.start]
        raise _fail(
            name, f"not valid UTF-8 (byte 0x{byte:02x}): save the file as UTF-8", line, column
        ) from None


def read_input(path: Path, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The text of the regular UTF-8 file ``path``; every problem is a ValidationFailed with a position."""
    return decode_text(display_path(path), read_input_bytes(path, limit=limit))
