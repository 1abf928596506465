"""Fresh packages and CVE-driven rebuilds, end to end, against a real local Debian archive served on
127.0.0.1 (the minbase package set of the shared cache, indexed with apt-ftparchive).

One pipeline (``when: updates-available``, ``triggers: [cve, manual]``), real builds through the
daemon's real executor, a clock the test moves:

1. an unchanged archive: the scheduled run is skipped with the check's reason;
2. a newer base-passwd is uploaded: a plain ``kiln build`` says its cached parent is behind (and keeps
   it); the next scheduled run is queued, builds with a refreshed parent
   (re-running every component but the archive-independent one), and the new image has the new version;
3. a vulnerability-database import (a held-in tracker fixture) shows a fixable high finding the
   archive has no fix for yet: the cve run is skipped with that reason;
4. the fix is uploaded: the cve run is queued and builds; the CVE is gone from the new image's scan,
   and ``kiln diff`` of old and new shows the upgraded package and the fixed CVE.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.events.cve import import_with_events
from kiln.monitor import ListMonitor
from kiln.pipelines.builds import BuildRunner
from kiln.pipelines.checks import ArchiveUpdates, CatalogChanges
from kiln.pipelines.cvetrigger import CveTrigger
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.load import load_pipelines
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.rootfs.debian import ParentRoot
from kiln.settings import Settings
from kiln.store import Store
from tests.debrepo import DebRepo, rebuilt_deb
from tests.documents import create_file_component
from tests.e2e.conftest import kiln

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).parents[1] / "fixtures/vuln/synthetic/tracker-base-passwd.json"
RECIPE = """\
name: fresh
version: 1.0.0
parent:
  image: debian:bookworm
  mirror: "{mirror}"
  security: false
settings: {{source_date_epoch: 1764547200}}
components:
  - {{path: marker.yaml, archive_independent: true}}
  - path: release.yaml
"""
COMPONENT = create_file_component("fresh", name="marker", path="/etc/kiln-marker")
RELEASE = create_file_component("fresh", name="release", path="/etc/kiln-release")
PIPELINE = """\
name: fresh
recipe: recipe.yaml
schedule: 0 4 * * *
when: updates-available
triggers: [cve, manual]
cve_severity: high
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # the schedule fires at 04:00 UTC

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(
    tmp_path: Path, bookworm_root: ParentRoot, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, object]]:
    """A data dir with a private cache (its .debs hard links of the shared ones), the local archive
    serving the minbase package set, and the pipeline applied."""
    shared = Path(os.environ["KILN_CACHE_DIR"])
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    for deb in (shared / "debs").glob("*.deb"):
        os.link(deb, cache / "debs" / deb.name)
    monkeypatch.setenv("KILN_CACHE_DIR", str(cache))
    repo = DebRepo(tmp_path / "archive")
    debs = {d["name"]: shared / "debs" / d["filename"] for d in bookworm_root.debs if d.get("filename")}
    repo.add(debs.values())
    repo.publish()
    with repo.serve():
        folder = tmp_path / "pipeline"
        folder.mkdir()
        (folder / "recipe.yaml").write_text(RECIPE.format(mirror=repo.mirror))
        (folder / "marker.yaml").write_text(COMPONENT)
        (folder / "release.yaml").write_text(RELEASE)
        (folder / "pipeline.yaml").write_text(PIPELINE)
        home = tmp_path / "home"
        store = Store.open(home)
        with Catalog.open(store.database_url) as catalog:
            clock = Clock()
            runs = PipelineStore(catalog)
            recipes = PipelineRecipes(catalog)
            runs.apply(load_pipelines(folder / "pipeline.yaml", recipes), clock())
            scheduler = Scheduler(
                runs,
                CatalogChanges(catalog, ArchiveUpdates(store, catalog)),
                recipes,
                cve=CveTrigger(store, catalog),
            )
            runner = BuildRunner(store, Settings.from_env(), catalog)
            daemon = Daemon(runs, runner, scheduler, recipes, home, clock)
            yield {"repo": repo, "debs": debs, "store": store, "catalog": catalog, "runs": runs,
                   "clock": clock, "daemon": daemon, "home": home, "tmp": tmp_path}  # fmt: skip


def installed(catalog: Catalog, ref: str, name: str) -> str:
    return next(p.version for p in catalog.packages(ref) if p.name == name)


def next_day(world: dict[str, object]) -> None:
    clock = world["clock"]
    assert isinstance(clock, Clock)
    clock.now += timedelta(days=1)


def test_updates_available_and_cve_rebuilds_against_a_local_archive(world: dict[str, object]) -> None:
    repo, debs, store, catalog = world["repo"], world["debs"], world["store"], world["catalog"]
    runs, daemon, home, tmp = world["runs"], world["daemon"], world["home"], world["tmp"]
    assert isinstance(repo, DebRepo) and isinstance(debs, dict) and isinstance(store, Store)
    assert isinstance(catalog, Catalog) and isinstance(runs, PipelineStore) and isinstance(daemon, Daemon)
    assert isinstance(home, Path) and isinstance(tmp, Path)
    wake = threading.Event()

    # The first image: a manual run (no image yet).
    runs.enqueue("fresh", "manual", "first", "manual:1", daemon.clock())
    assert daemon.once(wake) == 0, runs.runs("fresh")[0].reason
    first = catalog.get_image("fresh").ref
    base = installed(catalog, first, "base-passwd")
    assert base == "3.6.1"  # bookworm's; the synthetic tracker fixture names 3.6.1+kiln2
    lock = catalog.lock(first) or {}
    [state] = lock["parent"]["archive"]
    assert state["url"] == repo.url and state["suite"] == "bookworm" and len(state["sha256"]) == 64
    lineage = kiln("images", "lineage", first, "--json", home=home).json()
    root = next(n for n in lineage["nodes"] if n["kind"] == "root")
    assert root["archive"] == [state]

    # 1. Nothing new in the archive: the scheduled run is skipped, with the check's reason.
    next_day(world)
    assert daemon.once(wake) == 0
    skipped = runs.runs("fresh")[0]
    assert skipped.status == "skipped" and skipped.trigger.type == "schedule"
    assert f"no newer packages in the archive for {first}" in (skipped.reason or "")
    assert len(catalog.list_images("fresh")) == 1

    # 2. A newer base-passwd is uploaded: the scheduled run builds, with a refreshed parent.
    repo.add([rebuilt_deb(debs["base-passwd"], "3.6.1+kiln1", tmp)])
    repo.publish()
    outdated = kiln("images", "outdated-packages", first, "--json", home=home).json()
    assert [(u["name"], u["installed"], u["available"]) for u in outdated["updates"]] == [
        ("base-passwd", "3.6.1", "3.6.1+kiln1")
    ]
    # a plain build keeps the cached parent and says in one line that it is behind
    plain = kiln("build", str(tmp / "pipeline/recipe.yaml"), home=home)
    date = datetime.fromtimestamp(state["date"], UTC)
    assert (
        f"parent from {date:%Y-%m-%d}; archive has 1 newer packages (0 security): use --refresh"
        in plain.stderr
    )
    assert installed(catalog, catalog.get_image("fresh").ref, "base-passwd") == "3.6.1"
    next_day(world)
    assert daemon.once(wake) == 0, runs.runs("fresh")[0].reason
    ran = runs.runs("fresh")[0]
    assert ran.status == "succeeded" and ran.trigger.type == "schedule", ran
    assert "base-passwd 3.6.1 -> 3.6.1+kiln1" in ran.trigger.cause
    second = catalog.get_image("fresh").ref
    assert second != first and installed(catalog, second, "base-passwd") == "3.6.1+kiln1"
    # refreshed: a new parent layer; the archive-independent marker's layer found again; the
    # component after it re-ran on the new parent
    old_layers, new_layers = (catalog.lock(ref)["layers"] for ref in (first, second))  # type: ignore[index]
    assert (
        new_layers[0] != old_layers[0] and new_layers[1] == old_layers[1] and new_layers[2] != old_layers[2]
    )

    # 3. A feed import shows a fixable high CVE the archive has no fix for yet: skipped, with why.
    _, found = import_with_events(store, catalog, str(FIXTURE), ListMonitor())
    assert [(e.data["image"], e.data["vuln_id"]) for e in found if e.data["image"] == second] == [
        (second, "CVE-1999-92001")
    ]
    assert daemon.once(wake) == 0
    waiting = runs.runs("fresh")[0]
    assert waiting.status == "skipped" and waiting.trigger.type == "cve"
    assert waiting.reason == f"the archive has no fix yet for CVE-1999-92001 (checked {second}'s suites)"
    assert daemon.once(wake) == 0 and runs.runs("fresh")[0].id == waiting.id  # not recorded again

    # 4. The fix reaches the archive: the cve run rebuilds, and the new image's scan is clean of it.
    repo.add([rebuilt_deb(debs["base-passwd"], "3.6.1+kiln2", tmp)])
    repo.publish()
    clock = world["clock"]
    assert isinstance(clock, Clock)
    clock.now += timedelta(minutes=61)  # an archive without the fix is asked again hourly
    assert daemon.once(wake) == 0, runs.runs("fresh")[0].reason
    rebuilt = runs.runs("fresh")[0]
    assert rebuilt.status == "succeeded" and rebuilt.trigger.type == "cve", rebuilt
    assert rebuilt.trigger.cause.startswith("CVE-1999-92001 (high): base-passwd 3.6.1+kiln1 -> 3.6.1+kiln2")
    third = catalog.get_image("fresh").ref
    assert installed(catalog, third, "base-passwd") == "3.6.1+kiln2"
    before = kiln("scan", second, "-f", "json", home=home, check=False).json()
    after = kiln("scan", third, "-f", "json", home=home, check=False).json()
    assert "CVE-1999-92001" in {f["vuln_id"] for f in before["findings"]}
    assert "CVE-1999-92001" not in {f["vuln_id"] for f in after["findings"]}
    diff = kiln("diff", second, third, "--json", home=home).json()
    assert {
        "name": "base-passwd",
        "architecture": "amd64",
        "old": "3.6.1+kiln1",
        "new": "3.6.1+kiln2",
    } in diff["packages"]["upgraded"]
    assert [c["vuln_id"] for c in diff["cves"]["fixed"]] == ["CVE-1999-92001"]
    assert daemon.once(wake) == 0 and runs.runs("fresh")[0].id == rebuilt.id  # nothing left to do
