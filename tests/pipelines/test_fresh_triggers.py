"""The archive check of ``when: updates-available`` and the ``cve`` trigger, on a real catalog, a real
vulnerability database and (for the archive) a real local repository on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.build.freshness import ImageUpdates, parent_notice
from kiln.catalog import Catalog, PackageRecord
from kiln.evidence.vulnimport import import_feed
from kiln.monitor import ListMonitor
from kiln.pipelines.checks import ArchiveUpdates, CatalogChanges, Verdict, wants_refresh
from kiln.pipelines.cvetrigger import CveTrigger
from kiln.pipelines.load import load_pipelines
from kiln.pipelines.model import Pipeline
from kiln.pipelines.recipes import PipelineRecipes
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.rootfs.archive import SuiteState
from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.updates import Update, UpdatesReport, check_updates
from kiln.store import Store
from tests.catalog.conftest import new_image
from tests.debrepo import DebRepo, rebuilt_deb
from tests.pipelines.conftest import World, catalog_url  # noqa: F401  (fixtures)

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
STATE = SuiteState(url="http://127.0.0.1:9/debian", suite="bookworm", date=1764547200, sha256="a" * 64)
SSL = PackageRecord(name="libssl3", version="3.0.11-1~deb12u2", architecture="amd64", source="openssl",
                    source_version="3.0.11-1~deb12u2")  # fmt: skip
PIPELINE = """\
name: web
recipe: web.yaml
schedule: 0 4 * * *
when: updates-available
triggers: [cve, manual]
cve_severity: {severity}
"""
RECIPE = "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - path: marker.yaml\n"
COMPONENT = "name: marker\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: M\n" \
            "        action: CreateFile\n        inputs:\n          - path: /m\n            content: x\n"  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Store, Catalog, PipelineStore]]:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    with Catalog.open(store.database_url) as catalog:
        yield store, catalog, PipelineStore(catalog)


def apply(tmp_path: Path, runs: PipelineStore, severity: str = "high") -> None:
    (tmp_path / "web.yaml").write_text(RECIPE)
    (tmp_path / "marker.yaml").write_text(COMPONENT)
    (tmp_path / "web.pipeline.yaml").write_text(PIPELINE.format(severity=severity))
    runs.apply(load_pipelines(tmp_path / "web.pipeline.yaml", PipelineRecipes(runs.catalog)), NOW)


def record(
    catalog: Catalog, packages: list[PackageRecord], sources: list[str], archive: list[SuiteState]
) -> str:
    build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="/r/web.yaml",
                                log_path="/dev/null")  # fmt: skip
    lock = {
        "parent": {
            "image": "debian:bookworm",
            "sources": sources,
            "archive": [s.model_dump() for s in archive],
        }
    }
    return catalog.finish_build(build, new_image("web", packages=packages, lock=lock)).ref


def tracker(store: Store, tmp_path: Path, fixes: dict[str, tuple[str, str]]) -> None:
    """A tracker feed: openssl CVE id -> (fixed version, urgency), SYNTHETIC ids (CVE-1999-9xxxx)."""
    doc = {"openssl": {cve: {"releases": {"bookworm": {"status": "resolved", "fixed_version": fixed,
                                                       "urgency": urgency, "repositories": {}}}}
                       for cve, (fixed, urgency) in fixes.items()}}  # fmt: skip
    (tmp_path / "tracker.json").write_text(json.dumps(doc))
    import_feed(store, str(tmp_path / "tracker.json"), ListMonitor())


def archive_with(version: str | None) -> Callable[[str], ImageUpdates]:
    """The archive as the trigger sees it: libssl3 at ``version`` (None: nothing newer)."""

    def updates(ref: str) -> ImageUpdates:
        found = [] if version is None else [
            Update("libssl3", "amd64", SSL.version, version, "bookworm-security", True, "openssl",
                   SSL.source_version, version)
        ]  # fmt: skip
        return ImageUpdates(ref, "bookworm", [STATE], UpdatesReport(1, found, [STATE]))

    return updates


def test_cve_waits_for_the_archive_then_queues_once(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path
) -> None:
    store, catalog, runs = home
    apply(tmp_path, runs)
    ref = record(catalog, [SSL], [], [])
    scheduler = Scheduler(
        runs,
        CatalogChanges(catalog),
        PipelineRecipes(catalog),
        cve=CveTrigger(store, catalog, archive_with(None)),
    )
    assert scheduler.evaluate(NOW).skipped == []  # no vulnerability data yet: nothing to say
    tracker(
        store,
        tmp_path,
        {"CVE-1999-93001": ("3.0.15-1~deb12u1", "high"), "CVE-1999-93002": ("3.0.12-1", "low")},
    )
    [skipped] = scheduler.evaluate(NOW).skipped
    assert skipped.trigger.type == "cve"
    assert skipped.reason == f"the archive has no fix yet for CVE-1999-93001 (checked {ref}'s suites)"
    assert "CVE-1999-93002" not in skipped.trigger.cause  # low: under the pipeline's threshold
    assert scheduler.evaluate(NOW).skipped == []  # the same archive state is not recorded twice
    # the archive has a version, but not yet the fixed one
    scheduler.cve = CveTrigger(store, catalog, archive_with("3.0.14-1~deb12u1"))
    assert scheduler.evaluate(NOW).queued == []
    # the same trigger asks an archive without the fix again only after an hour
    archive = {"version": "3.0.15-1~deb12u1"}
    scheduler.cve.updates = lambda ref: archive_with(archive["version"])(ref)
    assert scheduler.evaluate(NOW + timedelta(minutes=30)).queued == []
    [queued] = scheduler.evaluate(NOW + timedelta(minutes=61)).queued
    assert (queued.trigger.type, queued.trigger.cause) == (
        "cve",
        f"CVE-1999-93001 (high): openssl 3.0.11-1~deb12u2 -> 3.0.15-1~deb12u1 in {ref} (fixed in the archive)",
    )
    assert scheduler.evaluate(NOW).queued == []  # a cause already acted on is not queued again
    assert wants_refresh(runs.get("web").pipeline, queued.trigger.type)


def test_cve_threshold_and_no_trigger(home: tuple[Store, Catalog, PipelineStore], tmp_path: Path) -> None:
    store, catalog, runs = home
    apply(tmp_path, runs, severity="critical")
    record(catalog, [SSL], [], [])
    tracker(store, tmp_path, {"CVE-1999-93001": ("3.0.15-1~deb12u1", "high")})
    scheduler = Scheduler(
        runs,
        CatalogChanges(catalog),
        PipelineRecipes(catalog),
        cve=CveTrigger(store, catalog, archive_with("3.0.15-1~deb12u1")),
    )
    result = scheduler.evaluate(NOW)
    assert result.queued == [] and result.skipped == []


def test_wants_refresh() -> None:
    scheduled = Pipeline(name="a", recipe="r.yaml", schedule="0 4 * * *", when="updates-available")
    always = Pipeline(name="b", recipe="r.yaml", schedule="0 4 * * *")
    assert wants_refresh(scheduled, "schedule") and wants_refresh(always, "cve")
    assert not wants_refresh(always, "schedule") and not wants_refresh(scheduled, "manual")


def test_archive_check_and_parent_notice_on_a_local_repository(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path, bookworm_root: ParentRoot
) -> None:
    from tests.conftest import TEST_CACHE

    store, catalog, runs = home
    apply(tmp_path, runs)
    debs = {
        d["name"]: d
        for d in bookworm_root.debs
        if d["name"] in ("base-passwd", "hostname") and d.get("filename")
    }
    repo = DebRepo(tmp_path / "repo")
    repo.add(TEST_CACHE / "debs" / d["filename"] for d in debs.values())
    repo.publish()
    packages = [
        PackageRecord(name=d["name"], version=d["version"], architecture=d["architecture"])
        for d in debs.values()
    ]
    with repo.serve():
        sources = [f"deb {repo.mirror} bookworm main"]
        recorded = check_updates([], sources, store.cache).archive
        ref = record(catalog, packages, sources, recorded)
        check = ArchiveUpdates(store, catalog)
        pipeline = runs.get("web")
        assert check(pipeline, RECIPE).reason == f"no newer packages in the archive for {ref}"
        assert repo.served("/Packages.xz") == [200]  # recorded == current: the check read no index
        parent = ParentRoot("k", tmp_path, 0, True, list(debs.values()), sources, archive=recorded)
        assert parent_notice(parent, store) is None
        repo.add(
            [rebuilt_deb(TEST_CACHE / "debs" / debs["hostname"]["filename"], "3.23+nmu1+kiln1", tmp_path)]
        )
        repo.publish()
        verdict = check(pipeline, RECIPE)
        assert verdict.available
        assert verdict.reason == (
            f"archive: 1 newer packages (0 security) since {ref}: hostname {debs['hostname']['version']} -> 3.23+nmu1+kiln1"
        )
        date = datetime.fromtimestamp(recorded[0].date, UTC)
        assert parent_notice(parent, store) == (
            f"parent from {date:%Y-%m-%d}; archive has 1 newer packages (0 security): use --refresh"
        )
    # offline: the notice is silent, the check says why it did not look
    assert parent_notice(parent, store, timeout=1) is None
    assert check(pipeline, RECIPE).reason.startswith("archive not checked: ")


def test_vulndb_import_evaluates_the_cve_trigger_at_once(
    home: tuple[Store, Catalog, PipelineStore], tmp_path: Path, bookworm_root: ParentRoot
) -> None:
    """``kiln vulndb import`` (the real CLI) records the cve trigger's verdict right away: here the
    local archive has no openssl at all, so no fix: skipped, with the reason printed."""
    from tests.conftest import TEST_CACHE
    from tests.e2e.conftest import kiln

    store, catalog, runs = home
    apply(tmp_path, runs)
    base = next(d for d in bookworm_root.debs if d["name"] == "base-passwd")
    repo = DebRepo(tmp_path / "repo")
    repo.add([TEST_CACHE / "debs" / base["filename"]])
    repo.publish()
    doc = {"openssl": {"CVE-1999-93001": {"releases": {"bookworm": {
        "status": "resolved", "fixed_version": "3.0.15-1~deb12u1", "urgency": "high", "repositories": {}}}}}}  # fmt: skip
    (tmp_path / "tracker.json").write_text(json.dumps(doc))
    with repo.serve():
        ref = record(catalog, [SSL], [f"deb {repo.mirror} bookworm main"], [])
        out = kiln("vulndb", "import", str(tmp_path / "tracker.json"), home=store.home,
                   env={"KILN_CACHE_DIR": str(store.cache)})  # fmt: skip
    reason = f"the archive has no fix yet for CVE-1999-93001 (checked {ref}'s suites)"
    assert f"pipeline web: not rebuilt: {reason}" in out.stdout
    [run] = runs.runs("web")
    assert (run.status, run.trigger.type, run.reason) == ("skipped", "cve", reason)


def test_runs_build_with_refresh_when_the_archive_is_why(world: World) -> None:
    """cve runs, scheduled runs of ``updates-available`` pipelines and re-runs of either build with a
    refreshed parent; manual runs do not."""
    world.apply(
        world.pipeline("app", "schedule: 0 4 * * *\nwhen: updates-available\ntriggers: [cve, manual]\n")
    )
    daemon = world.daemon()
    world.runner.instant = True
    cve = world.store.enqueue("app", "cve", "CVE-1999-93001", "cve:1", world.clock())
    assert cve is not None
    daemon.tick()
    world.store.enqueue("app", "manual", "by hand", "manual:1", world.clock())
    daemon.tick()
    world.store.enqueue("app", "retry", "re-run", "retry:1", world.clock(), retry_of=cve.id)
    daemon.tick()
    daemon.scheduler.check = lambda pipeline, text: Verdict(True, "archive: 1 newer packages (1 security)")
    world.clock.advance(days=1)
    daemon.tick()  # the schedule, with something new
    assert [r.options.refresh for r in world.runner.started] == [True, False, True, True]
