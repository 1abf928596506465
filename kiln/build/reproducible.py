"""``kiln build --check-reproducible``: build a second time from the same inputs and compare.

The second build runs in a throwaway data directory that shares only the parent root (the same locked
package set), the .deb cache and apt's lists: every component runs again, every layer and artifact is
written again. Any artifact whose digest differs fails the build, with a report of the files that differ;
nothing is recorded then.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from kiln.build.context import BuildContext
from kiln.errors import BuildFailed
from kiln.monitor import Monitor
from kiln.outputs.compare import compare_layouts
from kiln.store import Store

SHARED_CACHES = ("parents", "debs", "apt")


def twin_store(store: Store, home: Path) -> Store:
    """A data dir (and catalog) of its own whose cache shares only the parents, .debs and apt state."""
    cache = home / "cache"
    cache.mkdir(parents=True)
    for sub in SHARED_CACHES:
        (cache / sub).symlink_to(store.cache / sub)
    return Store.open_at(home, cache, database=f"sqlite:///{home / 'catalog.db'}")


def check_reproducible(ctx: BuildContext, monitor: Monitor) -> None:
    """Build the recipe again in a twin data dir; raise BuildFailed naming every artifact that differs."""
    from kiln.build.orchestrate import build  # the orchestrator calls us: import at use

    home = Path(tempfile.mkdtemp(prefix="reproduce-", dir=ctx.store.home / "tmp"))
    try:
        twin = twin_store(ctx.store, home)
        with monitor.stage("reproducible", "second build from the same inputs (reproducibility check)"):
            options = replace(ctx.options, check_reproducible=False, no_cache=False, keep_rootfs=False)
            env_before = os.environ.get("SOURCE_DATE_EPOCH")
            os.environ["SOURCE_DATE_EPOCH"] = str(ctx.epoch)  # same epoch even if the archive moved on
            try:
                second = build(ctx.loaded.path, twin, monitor, options, loaded=ctx.loaded)
            finally:
                if env_before is None:
                    os.environ.pop("SOURCE_DATE_EPOCH", None)
                else:
                    os.environ["SOURCE_DATE_EPOCH"] = env_before
        first = {a["kind"]: a for a in ctx.artifacts}
        report = []
        for artifact in second.image.artifacts:
            mine = first.get(artifact.kind)
            if mine is None or mine["digest"] == artifact.digest:
                continue
            report.append(f"{artifact.kind}: {mine['digest']} vs {artifact.digest}")
            if artifact.kind == "oci":
                comparison = compare_layouts(Path(mine["path"]), Path(artifact.path))
                report.append(comparison.summary())
        if report:
            raise BuildFailed(
                "the build is not reproducible: a second build from the same inputs differs\n"
                + "\n".join(report),
                hint="nothing was recorded; see docs on reproducibility (README) for what Kiln normalises",
            )
        monitor.info(
            f"reproducible: {len(second.image.artifacts)} artifact(s) bit-identical in a second build"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
