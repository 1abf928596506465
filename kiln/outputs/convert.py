"""Disk image formats: ``qemu-img convert`` from the raw disk, ``qemu-img check``/``info`` on every result.

Formats and their ``qemu-img`` names: raw, qcow2, vmdk (monolithicSparse; streamOptimized with
``compress``), vhdx, vhd (``vpc``, dynamic, ``force_size`` so the virtual size stays exact).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kiln.errors import KilnError
from kiln.sandbox.run import require_tool, run
from kiln.store import file_sha256

DiskFormat = Literal["raw", "qcow2", "vmdk", "vhdx", "vhd"]
CONVERTIBLE: tuple[DiskFormat, ...] = ("qcow2", "vmdk", "vhdx", "vhd")
QEMU_FORMAT = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhdx": "vhdx", "vhd": "vpc"}
CHECK_UNSUPPORTED = 63  # qemu-img check: "This image format does not support checks"


class DiskImage(BaseModel):
    """One disk image file."""

    model_config = ConfigDict(frozen=True)

    path: Path
    format: DiskFormat
    virtual_size: int
    real_size: int  # bytes allocated on the host file system (sparse files count only their data)
    digest: str  # sha256:<hex> of the file


def inspect_disk(path: Path, fmt: DiskFormat) -> DiskImage:
    """``qemu-img check`` (where the format has checks) and ``info``; raises if either fails."""
    qemu_img = require_tool("qemu-img")
    qfmt = QEMU_FORMAT[fmt]
    check = run([qemu_img, "check", "-f", qfmt, str(path)], check=False)
    if check.returncode not in (0, CHECK_UNSUPPORTED):
        raise KilnError(f"qemu-img check found problems in {path}:\n{check.tail}")
    info = json.loads(run([qemu_img, "info", "--output=json", "-f", qfmt, str(path)]).stdout)
    if info.get("format") != qfmt:
        raise KilnError(f"{path}: qemu-img reads it as {info.get('format')}, not {qfmt}")
    return DiskImage(
        path=path,
        format=fmt,
        virtual_size=int(info["virtual-size"]),
        real_size=path.stat().st_blocks * 512,
        digest="sha256:" + file_sha256(path),
    )


def convert_disk(
    raw: Path, fmt: DiskFormat, dest: Path, *, compress: bool = False, epoch: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DiskImage:  # fmt: skip
    """Convert the raw disk ``raw`` to ``fmt`` at ``dest`` (written beside it, then renamed into place).

    qcow2 is reproducible as qemu-img writes it; the random VMDK content ID and the VHD's UUID and
    timestamp are replaced by values derived from the raw disk (and ``epoch``), so those are too.
    VHDX is not: its headers carry random GUIDs under CRC-32C checksums that Kiln does not rewrite.
    ``on_progress(done, total)`` is told, about every second, the bytes written so far of the raw
    disk's allocated bytes (a display's estimate: a compressed result stays below the total).
    """
    if fmt == "raw":
        raise KilnError("convert_disk makes qcow2, vmdk, vhdx or vhd; the raw disk is build_disk's output")
    options = {
        "qcow2": [],
        "vmdk": ["-o", "subformat=streamOptimized" if compress else "subformat=monolithicSparse"],
        "vhdx": ["-o", "subformat=dynamic"],
        "vhd": ["-o", "subformat=dynamic,force_size=on"],
    }[fmt]
    if compress and fmt == "qcow2":
        options = ["-c"]
    # Written under its final name (a VMDK's descriptor names its own file) in a scratch folder beside
    # ``dest``, then renamed into place: no half-written file ever has the destination's name.
    scratch = Path(tempfile.mkdtemp(prefix=".kiln-convert-", dir=dest.parent))
    partial = scratch / dest.name
    try:
        with _watch_growth(partial, _allocated(raw), on_progress):
            run([require_tool("qemu-img"), "convert", "-q", "-f", "raw", "-O", QEMU_FORMAT[fmt], *options,
                 str(raw), str(partial)])  # fmt: skip
        pin_identifiers(partial, fmt, _seed(raw), epoch or 0)
        image = inspect_disk(partial, fmt)
        os.replace(partial, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return image.model_copy(update={"path": dest})


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@contextmanager
def _watch_growth(path: Path, total: int, report: Callable[[int, int], None] | None) -> Iterator[None]:
    """Report the allocated size of ``path`` every second while the block runs (and once at the end)."""
    if report is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(1.0):
            with contextlib.suppress(OSError):
                report(min(_allocated(path), total), total)

    watcher = threading.Thread(target=watch, name="kiln-convert-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    report(total, total)


VHD_EPOCH = 946684800  # VHD timestamps count seconds from 2000-01-01 UTC
# qemu-img writes the random content ID with %x: one CID in 16 has fewer than 8 digits.
VMDK_CID = re.compile(rb"(?<![A-Za-z])CID=[0-9a-f]{1,8}\n")


def _seed(raw: Path) -> bytes:
    """Cheap and deterministic: the size and first MiB of a Kiln disk (its GPT holds seed-derived GUIDs)."""
    with open(raw, "rb") as fh:
        return hashlib.sha256(str(raw.stat().st_size).encode() + fh.read(1 << 20)).digest()


def pin_identifiers(path: Path, fmt: DiskFormat, seed: bytes, epoch: int) -> None:
    """Replace the random fields qemu-img writes into VMDK and VHD files with derived ones."""
    if fmt == "vmdk":
        with open(path, "r+b") as fh:
            head = fh.read(1 << 16)
            match = VMDK_CID.search(head)
            if match:
                # The descriptor text ends at the NUL padding of its area; a longer CID shifts the rest
                # of the text into that padding.
                end = head.index(b"\0", match.end())
                rest = head[match.end() : end]
                pinned = b"CID=" + seed[:4].hex().encode() + b"\n" + rest
                grow = len(pinned) - (end - match.start())
                if head[end : end + grow].strip(b"\0"):
                    raise KilnError(f"{path}: no room in the VMDK descriptor to pin its CID")
                fh.seek(match.start())
                fh.write(pinned)
    elif fmt == "vhd":
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            for offset in (0, size - 512):  # a dynamic VHD keeps a copy of its footer at the start
                fh.seek(offset)
                footer = bytearray(fh.read(512))
                if footer[:8] != b"conectix":
                    continue
                struct.pack_into(">I", footer, 24, max(epoch - VHD_EPOCH, 0))
                footer[68:84] = seed[:16]
                struct.pack_into(">I", footer, 64, 0)
                struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
                fh.seek(offset)
                fh.write(footer)
