#!/usr/bin/env python3
"""Lifecycle benchmark: how long a policy's plan and its apply take on a generated catalog (default
2,000 image versions: 100 names x 20 versions recorded over two years, channel pointers on some),
and how long computing the references across images (what retire and gc read) takes.

The images have no artifacts on disk, so apply measures the catalog work (state changes, history rows,
reference computation per retire), not file deletion.
Usage: .venv/bin/python bench/lifecycle.py [--images 2000] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kiln.catalog import Catalog, NewImage  # noqa: E402
from kiln.catalog.models import BuildRow, ImageRow, PromotionRow  # noqa: E402
from kiln.catalog.records import image_row  # noqa: E402
from kiln.lifecycle.plan import apply, plan  # noqa: E402
from kiln.lifecycle.policy import LifecyclePolicy, LoadedLifecyclePolicy, Rule  # noqa: E402
from kiln.lifecycle.references import live_references  # noqa: E402
from kiln.store import Store  # noqa: E402

NAMES = 100
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def fill(catalog: Catalog, count: int) -> None:
    per_name = max(1, count // NAMES)
    with catalog.session(write=True) as s, s.begin():
        for n in range(NAMES):
            name = f"team{n:03d}-image"
            for v in range(per_name):
                when = NOW - timedelta(days=(per_name - v) * 730 / per_name)
                build_id = uuid.uuid4().hex
                s.add(BuildRow(
                    id=build_id, recipe_name=name, recipe_version=f"1.{v}.0", recipe_path="/r.yaml",
                    status="succeeded", started=when, finished=when, log_path="/l", error=None, host="bench",
                    pid=1, pid_start=None,
                ))  # fmt: skip
                image = NewImage(name=name, version=f"1.{v}.0", digest="sha256:" + uuid.uuid4().hex * 2,
                                 created=when, parent="debian:bookworm")  # fmt: skip
                s.add(image_row(image, build_id=build_id, build_number=1, recorded=when))
        s.flush()
        for n in range(0, NAMES, 10):  # a channel on every tenth name points at an old version
            row = s.query(ImageRow).filter_by(name=f"team{n:03d}-image", version="1.0.0").one()
            s.add(PromotionRow(image_name=row.name, channel="prod", image_id=row.id, action="promote",
                               allowed=True, decision={}, envelope=None, who="bench", at=NOW))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-lifecycle-"))
    try:
        store = Store.open_at(work, work / "cache")
        with Catalog.open(store.database_url) as catalog:
            fill(catalog, args.images)
            rule = Rule(keep_newest=3, deprecate_after_days=30, disable_after_days=90, retire_after_days=365,
                        retain_at_least=2)  # fmt: skip
            policy = LoadedLifecyclePolicy(path=Path("bench.yaml"), digest="sha256:bench",
                                           policy=LifecyclePolicy(rules=[rule]))  # fmt: skip
            began = time.perf_counter()
            planned = plan(catalog, policy, now=NOW)
            plan_s = time.perf_counter() - began
            began = time.perf_counter()
            live_references(store, catalog)
            refs_s = time.perf_counter() - began
            began = time.perf_counter()
            done = apply(store, catalog, planned, actor="bench")
            apply_s = time.perf_counter() - began
        moves = Counter(c.to_state for c in planned.changes)
        print(f"images: {args.images}; plan: {len(planned.changes)} changes {dict(moves)}, "
              f"{len(planned.excluded)} excluded")  # fmt: skip
        print(f"plan {plan_s * 1000:.0f} ms; references across images {refs_s * 1000:.0f} ms; "
              f"apply {apply_s:.1f} s ({apply_s / max(1, len(done)) * 1000:.1f} ms per change)")  # fmt: skip
        assert not [d for d in done if d.error]
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
