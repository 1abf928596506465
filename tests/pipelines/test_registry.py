"""Pipelines over the registry: a pipeline naming a published recipe applies and its runs build the
newest published version in range; a new component version in the recipe's range queues one run
(the ``component`` trigger), with the injectable clock and a real catalog."""

from __future__ import annotations

from pathlib import Path

from kiln.registry.components import deprecate_component, publish_component
from kiln.registry.recipes import VIRTUAL_DIR, publish_recipe
from tests.pipelines.conftest import COMPONENT, World


def publish_marker(world: World, version: str) -> None:
    path = world.folder / f"marker-{version}.yaml"
    path.write_text(COMPONENT.replace("name: marker", f"name: marker\nversion: {version}"))
    publish_component(world.catalog, path, who="test")


def publish_web(world: World, version: str) -> None:
    path = world.folder / f"web-{version}.recipe.yaml"
    path.write_text(
        f"name: web\nversion: {version}\nparent: debian:bookworm\n"
        "components:\n  - name: marker@1.x\n    parameters: {Greeting: hi}\n"
    )
    publish_recipe(world.catalog, path, who="test")


def pipeline(world: World, recipe: str, triggers: str = "[component, manual]") -> Path:
    path = world.folder / "web.pipeline.yaml"
    path.write_text(f"name: web\nrecipe: {recipe}\ntriggers: {triggers}\n")
    return path


def test_a_pipeline_of_a_published_recipe_builds_the_newest_version_in_range(world: World) -> None:
    publish_marker(world, "1.0.0")
    publish_web(world, "1.0.0")
    assert world.apply(pipeline(world, "web@1.x")) == [("web", "created")]
    [applied] = world.store.pipelines()
    assert applied.image == "web" and applied.recipe_path == VIRTUAL_DIR / "web@1.0.0.yaml"
    daemon = world.daemon()
    world.store.enqueue("web", "manual", "x", "manual:1", world.clock())
    daemon.tick()
    [request] = world.runner.started
    assert request.recipe.path == VIRTUAL_DIR / "web@1.0.0.yaml" and "version: 1.0.0" in request.recipe.text
    world.runner.complete()
    publish_web(world, "1.1.0")  # the next run takes the new version in, without re-applying
    world.store.enqueue("web", "manual", "x", "manual:2", world.clock())
    daemon.tick()
    daemon.tick()
    assert world.runner.started[1].recipe.path == VIRTUAL_DIR / "web@1.1.0.yaml"
    assert [r.status for r in world.store.runs("web")] == ["running", "succeeded"]


def test_a_new_component_version_in_range_queues_one_run_naming_both_versions(world: World) -> None:
    publish_marker(world, "1.0.0")
    path = world.folder / "web.recipe.yaml"
    path.write_text(
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n  - marker@1.x\n  - update-os\n"
    )
    world.apply(pipeline(world, "web.recipe.yaml"))
    assert world.store.get("web").components == ["marker@1.x"]
    daemon = world.daemon()
    daemon.tick()
    assert world.store.runs("web") == []  # the version seen at apply is no news
    publish_marker(world, "2.0.0")  # out of range
    world.clock.advance(minutes=1)
    daemon.tick()
    assert world.store.runs("web") == []
    publish_marker(world, "1.1.0")
    world.clock.advance(minutes=1)
    daemon.tick()
    daemon.tick()  # seen once: not queued again
    [run] = world.store.runs("web")
    assert (run.trigger.type, run.status) == ("component", "running")
    assert run.trigger.cause == "new version of component marker in marker@1.x: 1.0.0 -> 1.1.0"
    world.runner.complete()
    daemon.tick()
    # Deprecating the newest version moves the range back: the cursor follows, nothing is built.
    deprecate_component(world.catalog, "marker", "1.1.0", reason="broken", who="test")
    daemon.tick()
    assert len(world.store.runs("web")) == 1
    assert world.store.component_cursor("web") == {"marker@1.x": "1.0.0"}
    publish_marker(world, "1.2.0")
    daemon.tick()
    assert world.store.runs("web")[0].trigger.cause.endswith("marker@1.x: 1.0.0 -> 1.2.0")


def test_without_the_component_trigger_a_new_version_starts_nothing(world: World) -> None:
    publish_marker(world, "1.0.0")
    (world.folder / "web.recipe.yaml").write_text(
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [marker@latest]\n"
    )
    world.apply(pipeline(world, "web.recipe.yaml", triggers="[manual]"))
    publish_marker(world, "1.1.0")
    world.daemon().tick()
    assert world.store.runs("web") == []


def test_updates_available_sees_a_new_component_version_in_range(world: World) -> None:
    publish_marker(world, "1.0.0")
    (world.folder / "web.recipe.yaml").write_text(
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [marker@1.x]\n"
    )
    path = world.folder / "web.pipeline.yaml"
    path.write_text(
        "name: web\nrecipe: web.recipe.yaml\nschedule: 0 4 * * *\nwhen: updates-available\ntriggers: [manual]\n"
    )
    world.apply(path)
    world.runner.instant = True
    daemon = world.daemon()
    for _ in range(2):
        world.clock.advance(days=1)
        daemon.tick()
    built, skipped = world.store.runs("web")[1], world.store.runs("web")[0]
    assert built.status == "succeeded" and skipped.status == "skipped"
    assert skipped.reason is not None and skipped.reason.startswith(
        "no updates: parent, recipe and components"
    )
    publish_marker(world, "1.1.0")
    world.clock.advance(days=1)
    daemon.tick()
    daemon.tick()
    newest = world.store.runs("web")[0]
    assert newest.status == "succeeded" and newest.trigger.type == "schedule"
    assert "component marker in marker@1.x: 1.0.0 -> 1.1.0 since web@1.0.0/1" in newest.trigger.cause
