"""Writing a layer reports its progress in bytes; the reports never change the layer's bytes."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.layers.tar import PROGRESS_STEP, write_layer


def test_progress_reports_rise_to_the_total_and_leave_the_digest_alone(tmp_path: Path) -> None:
    tree = tmp_path / "upper"
    (tree / "opt").mkdir(parents=True)
    (tree / "opt/big").write_bytes(os.urandom(3 * PROGRESS_STEP + 12345))
    (tree / "opt/small").write_text("hello")
    total = 3 * PROGRESS_STEP + 12345 + 5
    reports: list[tuple[int, int]] = []
    seen = write_layer(tree, tmp_path / "a.tar.gz", epoch=0, kind="upper",
                       on_progress=lambda done, of: reports.append((done, of)))  # fmt: skip
    plain = write_layer(tree, tmp_path / "b.tar.gz", epoch=0, kind="upper")
    assert seen.digest == plain.digest
    assert len(reports) >= 4 and {of for _, of in reports} == {total}
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == total
