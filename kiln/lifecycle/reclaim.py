"""Reclaim what dead Kiln processes left behind: scratch directories and unrecorded image directories.

A process removes its own scratch and, when a build fails, its output directory; one killed with
SIGKILL (or by a power cut) cannot. Every scratch directory has an owner file beside it, flock'ed by
its process for as long as it lives, naming the build and output directory it belongs to. The kernel releases
the lock when the process dies, so a lock that can be taken proves the owner is gone: no pid files,
no guessing from ages, safe with concurrent builds and across PID namespaces.

Any command that opens the data directory reclaims dead scratch (:func:`reclaim_dead_scratch`);
``kiln gc`` also finds image directories whose build never recorded them and what no image references
(:func:`collect_garbage`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kiln.catalog import Catalog
from kiln.errors import KilnError
from kiln.sandbox.overlay import sweep_stale_mounts
from kiln.store import OWNER_SUFFIX, Store, owner_file

OUTPUT_DIR = re.compile(r"^\d+\.\d+\.\d+-(?P<build>[0-9a-f]{12})$")


@dataclass(frozen=True)
class Reclaimed:
    path: Path
    kind: str  # "scratch" | "unrecorded-image"
    size: int
    reason: str


@dataclass
class ReclaimReport:
    reclaimed: list[Reclaimed] = field(default_factory=list)
    kept: list[Reclaimed] = field(default_factory=list)  # found but left alone, with why

    @property
    def freed(self) -> int:
        return sum(item.size for item in self.reclaimed)


def tree_size(path: Path) -> int:
    """Bytes allocated under ``path`` (hard links counted once), without following symlinks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                st = (Path(folder) / name).lstat()
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


@contextlib.contextmanager
def _dead_owner(scratch: Path) -> Iterator[dict[str, str] | None]:
    """Yields the owner record of ``scratch`` while holding its lock if its process is gone, else None."""
    try:
        fh = open(owner_file(scratch), encoding="utf-8")
    except OSError:
        yield None  # no owner yet (being created) or not Kiln's: leave it
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None  # its process is alive
            return
        try:
            owner = json.loads(fh.read() or "{}")
        except ValueError:
            owner = {}
        yield {str(k): str(v) for k, v in owner.items()} if isinstance(owner, dict) else {}


def _remove(path: Path, kind: str, reason: str, report: ReclaimReport, dry_run: bool) -> None:
    item = Reclaimed(path, kind, tree_size(path), reason)
    if not dry_run:
        sweep_stale_mounts(path)  # only with KILN_MOUNT_NAMESPACE=host can a dead build leave mounts
        shutil.rmtree(path)
    report.reclaimed.append(item)


def _recorded(catalog: Catalog, build_id: str) -> bool | None:
    """Did this build record an image? None when the catalog does not know the build."""
    try:
        build = catalog.get_build(build_id)
    except KilnError:
        return None
    return build.image is not None or build.status == "running"


def reclaim_dead_scratch(store: Store, *, dry_run: bool = False) -> ReclaimReport:
    """Remove the scratch directories (and unrecorded output directories) of processes that are gone."""
    report = ReclaimReport()
    tmp = store.home / "tmp"
    if not tmp.is_dir():
        return report
    catalog: Catalog | None = None
    try:
        for lock in sorted(tmp.glob("*" + OWNER_SUFFIX)):
            scratch = lock.with_name(lock.name.removesuffix(OWNER_SUFFIX))
            with _dead_owner(scratch) as owner:
                if owner is None:
                    continue
                output = Path(owner["output"]) if owner.get("output") else None
                if output is not None and output.is_dir() and output.is_relative_to(store.home / "images"):
                    catalog = catalog or Catalog.open(store.database_url)  # reaps the dead build first
                    if not _recorded(catalog, owner.get("build", "")):
                        reason = f"build {owner.get('build', '?')[:12]} died before recording it"
                        _remove(output, "unrecorded-image", reason, report, dry_run)
                build = owner.get("build", "")
                reason = f"its process is gone (build {build[:12]})" if build else "its process is gone"
                if scratch.is_dir() and not scratch.is_symlink():
                    _remove(scratch, "scratch", reason, report, dry_run)
                if not dry_run:
                    lock.unlink(missing_ok=True)
    finally:
        if catalog is not None:
            catalog.close()
    return report


def collect_garbage(store: Store, *, dry_run: bool = False) -> ReclaimReport:
    """Dead scratch, every image directory whose build failed or died without recording it, and what
    no image references any more (:mod:`kiln.lifecycle.blobgc`: blobs, layer cache entries, leftovers
    of retired images)."""
    report = reclaim_dead_scratch(store, dry_run=dry_run)
    done = {item.path for item in report.reclaimed}
    images = store.home / "images"
    with Catalog.open(store.database_url) as catalog:
        for folder in sorted(images.glob("*/*")):
            match = OUTPUT_DIR.match(folder.name)
            if not folder.is_dir() or match is None or folder in done:
                continue
            recorded = _recorded(catalog, match["build"])
            if recorded is None:
                report.kept.append(Reclaimed(folder, "unknown-image", tree_size(folder),
                                             "no build in this catalog made it"))  # fmt: skip
            elif not recorded:
                _remove(folder, "unrecorded-image", "its build did not record it", report, dry_run)
        from kiln.lifecycle.blobgc import collect_unreferenced

        collect_unreferenced(
            store, catalog,
            lambda path, kind, size, why: report.reclaimed.append(Reclaimed(path, kind, size, why)),
            lambda path, kind, size, why: report.kept.append(Reclaimed(path, kind, size, why)),
            dry_run=dry_run,
        )  # fmt: skip
    return report
