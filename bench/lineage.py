"""Benchmark: ``kiln images lineage`` on a catalog of 2,000 image versions (SQLite), counting SQL
statements. One family of 421 versions (a base, 20 children built on ``kiln:base@1.x``, 20
grandchildren each naming their parent ``mid-N@1.0.0/1``) among 1,579 unrelated versions.
Usage: .venv/bin/python bench/lineage.py [--images 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert

from kiln.catalog import Catalog
from kiln.catalog.models import BuildRow, ImageRow

MIDS, LEAVES = 20, 20


def generate(catalog: Catalog, images: int) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = []

    def add(name: str, version: str, parent: str, parent_digest: str | None) -> str:
        digest = f"sha256:{len(rows) + 1:064x}"
        rows.append(dict(id=len(rows) + 1, name=name, version=version, build_number=1, digest=digest,
                         created=now, recorded=now, parent=parent, parent_digest=parent_digest,
                         recipe_digest="sha256:" + "1" * 64, description="", size=1, state="active",
                         build_id=f"{len(rows) + 1:032x}", lock=None))  # fmt: skip
        return digest

    base = add("base", "1.0.0", "debian:bookworm", None)
    for m in range(MIDS):
        mid = add(f"mid-{m:02d}", "1.0.0", "kiln:base@1.x", base)
        for leaf in range(LEAVES):
            add(f"leaf-{m:02d}-{leaf:02d}", "1.0.0", f"mid-{m:02d}@1.0.0/1", mid)
    other = 0
    while len(rows) < images:
        name = f"other-{other // 10:03d}"
        add(name, f"1.{other % 10}.0", "debian:bookworm", None)
        other += 1
    builds = [dict(id=r["build_id"], recipe_name=r["name"], recipe_version=r["version"], recipe_path="r",
                   status="succeeded", started=now, finished=now, log_path="l", host="h", pid=1)
              for r in rows]  # fmt: skip
    with catalog.session(write=True) as s, s.begin():
        s.execute(insert(BuildRow), builds)
        s.execute(insert(ImageRow), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-lineage-"))
    try:
        with Catalog.open(f"sqlite:///{work / 'catalog.db'}") as catalog:
            generate(catalog, args.images)
            statements = [0]

            def count(*_: object) -> None:
                statements[0] += 1

            event.listen(catalog.engine, "before_cursor_execute", count)
            print(f"{'lineage of':<24} {'nodes':>6} {'statements':>11} {'median ms':>10} {'max ms':>8}")
            for ref in ("base@1.0.0/1", "mid-07@1.0.0/1", "leaf-07-03@1.0.0/1"):
                times = []
                for _ in range(args.repeat):
                    statements[0] = 0
                    start = time.perf_counter()
                    graph = catalog.lineage_graph(ref)
                    times.append((time.perf_counter() - start) * 1000)
                print(f"{ref:<24} {len(graph.nodes):>6} {statements[0]:>11} "
                      f"{statistics.median(times):>10.1f} {max(times):>8.1f}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
