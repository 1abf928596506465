"""``kiln build --check-reproducible``: the image produced a second time, independently, and compared.

The second production runs in a throwaway data directory that shares only the parent root (the same
locked package set), the .deb cache and apt's lists: every component runs again, every layer and
artifact is written again. Any artifact whose digest differs fails the build, with a report of the
files that differ; nothing is recorded then.
"""

from __future__ import annotations

from pathlib import Path

from kiln.errors import BuildFailed
from kiln.models import Product
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


def compare_products(first: Product, second: Product, monitor: Monitor) -> None:
    """Raise BuildFailed naming every artifact of ``first`` whose digest ``second`` does not repeat."""
    again = {a.kind: a for a in second.artifacts}
    report = []
    for mine in first.artifacts:
        other = again.get(mine.kind)
        if other is None or other.digest == mine.digest:
            continue
        report.append(f"{mine.kind}: {mine.digest} vs {other.digest}")
        if mine.kind == "oci":
            report.append(compare_layouts(mine.file, other.file).summary())
    if report:
        raise BuildFailed(
            "the build is not reproducible: a second build from the same inputs differs\n"
            + "\n".join(report),
            hint="nothing was recorded; see docs on reproducibility (README) for what Kiln normalises",
        )
    compared = sum(1 for a in first.artifacts if a.kind in again)
    monitor.info(f"reproducible: {compared} artifact(s) bit-identical in a second build")
