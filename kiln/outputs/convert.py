"""Disk image formats: ``qemu-img convert`` from the raw disk, ``qemu-img check``/``info`` on every result.

Formats and their ``qemu-img`` names: raw, qcow2, vmdk (monolithicSparse; streamOptimized with
``compress``), vhdx, vhd (``vpc``, dynamic, ``force_size`` so the virtual size stays exact).
"""

from __future__ import annotations

import json
import os
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


def convert_disk(raw: Path, fmt: DiskFormat, dest: Path, *, compress: bool = False) -> DiskImage:
    """Convert the raw disk ``raw`` to ``fmt`` at ``dest`` (written beside it, then renamed into place)."""
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
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        run([require_tool("qemu-img"), "convert", "-q", "-f", "raw", "-O", QEMU_FORMAT[fmt], *options,
             str(raw), str(partial)])  # fmt: skip
        image = inspect_disk(partial, fmt)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return image.model_copy(update={"path": dest})
