"""A disk conversion reports its progress in bytes (for the live display) and ends at the total."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.outputs.convert import convert_disk


def test_conversion_reports_the_raw_disks_allocated_bytes(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as fh:
        fh.truncate(256 << 20)  # sparse: 256 MiB, of which 24 MiB hold data
        for offset in (0, 100 << 20, 200 << 20):
            fh.seek(offset)
            fh.write(os.urandom(8 << 20))
    allocated = raw.stat().st_blocks * 512
    reports: list[tuple[int, int]] = []
    made = convert_disk(raw, "qcow2", tmp_path / "disk.qcow2",
                        on_progress=lambda done, total: reports.append((done, total)))  # fmt: skip
    quiet = convert_disk(raw, "qcow2", tmp_path / "again.qcow2")
    assert made.digest == quiet.digest  # watching changes nothing
    assert reports and reports[-1] == (allocated, allocated)
    assert all(total == allocated and 0 <= done <= total for done, total in reports)
