"""A pipeline's ``tests`` reach the build request its run submits: ``enabled: false`` skips the test
phases, ``timeout_minutes`` bounds the test stage (in seconds in BuildOptions); the requester names
the run, which is what the build records as having turned the tests off."""

from __future__ import annotations

from pathlib import Path

from kiln.models import BuildOptions
from kiln.pipelines.model import Pipeline
from kiln.pipelines.options import run_options
from tests.e2e.conftest import kiln
from tests.pipelines.conftest import World, catalog_url, world
from tests.pipelines.test_cli import files

__all__ = ["catalog_url", "world"]  # fixtures


def test_the_pipelines_tests_are_in_its_runs_build_request(world: World) -> None:
    world.apply(
        world.pipeline("untested", "tests: {enabled: false}\n"),
        world.pipeline("bounded", "tests: {timeout_minutes: 90}\n"),
    )
    for name in ("untested", "bounded"):
        assert world.store.enqueue(name, "manual", "by alice", f"manual:{name}", world.clock()) is not None
    world.daemon(workers=2).tick()
    by_name = {r.requester.split()[1]: r for r in world.runner.started if r.requester}
    assert by_name["untested"].options == BuildOptions(skip_tests=True, test_timeout=720 * 60)
    assert by_name["bounded"].options == BuildOptions(skip_tests=False, test_timeout=90 * 60)
    [run] = world.store.runs("untested")
    assert by_name["untested"].requester == f"pipeline untested run {run.id} (manual: by alice)"


def test_refresh_still_follows_the_trigger() -> None:
    spec = Pipeline(name="web", recipe="web.yaml", schedule="0 4 * * *", when="updates-available")
    assert run_options(spec, "schedule").refresh and run_options(spec, "cve").refresh
    assert not run_options(spec, "manual").refresh
    assert not run_options(spec, "manual").skip_tests


def test_show_says_whether_a_pipeline_tests_its_images(tmp_path: Path) -> None:
    folder = files(tmp_path / "p", {"web": "debian:bookworm", "quick": "debian:bookworm"})
    with (folder / "quick.yaml").open("a") as fh:
        fh.write("tests: {enabled: false}\n")
    home = tmp_path / "home"
    kiln("pipelines", "apply", str(folder), home=home)
    assert "tests: run, within 720 min" in kiln("pipelines", "show", "web", home=home).stdout
    assert "tests: skipped (enabled: false)" in kiln("pipelines", "show", "quick", home=home).stdout
