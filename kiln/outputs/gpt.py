"""GPT partition tables on sparse disk files (``sfdisk``), and sparse copies into a disk at an offset.

Nothing here mounts or attaches loop devices: the disk is a plain file that other tools write into
at byte offsets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError
from kiln.sandbox.run import require_tool, run

SECTOR = 512
MIB = 1 << 20

ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_X86_64_TYPE = "4F68BCE3-E8CD-4D1C-96E7-FBCAF984B709"
LINUX_DATA_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


@dataclass(frozen=True)
class Partition:
    """One partition: byte offset and size (MiB-aligned), GPT type and unique GUIDs, name."""

    name: str
    type: str
    uuid: str
    start: int
    size: int
    legacy_boot: bool = False

    def sfdisk_line(self) -> str:
        attrs = ', attrs="LegacyBIOSBootable"' if self.legacy_boot else ""
        return (
            f"start={self.start // SECTOR}, size={self.size // SECTOR}, type={self.type}, "
            f'uuid={self.uuid}, name="{self.name}"{attrs}'
        )


def write_partition_table(disk: Path, disk_uuid: str, partitions: list[Partition]) -> None:
    """Write a GPT with fixed GUIDs (reproducible) to ``disk``, which must already have its size."""
    script = "\n".join(
        ["label: gpt", f"label-id: {disk_uuid}", "unit: sectors", *(p.sfdisk_line() for p in partitions)]
    )
    run([require_tool("sfdisk"), "--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never",
         str(disk)], input=(script + "\n").encode())  # fmt: skip


def read_partitions(disk: Path) -> list[Partition]:
    """The GPT of a raw disk file (or a raw view of another format, e.g. a FUSE export)."""
    done = run([require_tool("sfdisk"), "--json", str(disk)], check=False)
    if done.returncode != 0:
        raise KilnError(f"{disk}: no readable partition table: {done.stderr.strip()}")
    table = json.loads(done.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", SECTOR))
    return [
        Partition(
            name=p.get("name", ""),
            type=p["type"].upper(),
            uuid=p.get("uuid", ""),
            start=int(p["start"]) * sector,
            size=int(p["size"]) * sector,
            legacy_boot="LegacyBIOSBootable" in p.get("attrs", ""),
        )
        for p in table.get("partitions", [])
    ]


def root_partition(partitions: list[Partition]) -> Partition:
    """The root file system's partition: by GPT root type, then by name, then the only Linux one."""
    rules: list[Callable[[Partition], bool]] = [
        lambda p: p.type == ROOT_X86_64_TYPE,
        lambda p: p.name == "root",
        lambda p: p.type == LINUX_DATA_TYPE,
    ]
    for rule in rules:
        found = [p for p in partitions if rule(p)]
        if len(found) == 1:
            return found[0]
    raise KilnError(
        "the disk has no recognisable root partition (GPT type 'Linux root x86-64' or name 'root')"
    )


def copy_sparse(source: Path, dest: Path, offset: int, *, chunk: int = MIB) -> None:
    """Copy ``source`` into ``dest`` at ``offset`` without writing all-zero chunks (``dest`` stays sparse)."""
    zero = bytes(chunk)
    with open(source, "rb") as src, open(dest, "r+b") as out:
        fd = out.fileno()
        position = offset
        while block := src.read(chunk):
            if block != zero[: len(block)]:
                os.pwrite(fd, block, position)
            position += len(block)
