"""Pipeline fixtures: a real catalog, a clock the test moves, and a runner that records image
versions in that catalog the way a build does (start_build, then finish_build), so the daemon's
scheduling, ordering and recovery are tested without minutes of real builds per case."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kiln.catalog import Catalog, NewImage
from kiln.catalog.schemas import ComponentRecord
from kiln.models import BuildRequest
from kiln.pipelines.builds import BuildState, Started
from kiln.pipelines.checks import CatalogChanges
from kiln.pipelines.components import newest_in_range
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.load import load_pipelines
from kiln.pipelines.recipes import PipelineRecipes, kiln_parents
from kiln.pipelines.scheduler import Scheduler
from kiln.pipelines.store import PipelineStore
from kiln.recipes.model import Recipe
from tests.catalog.conftest import catalog_url  # noqa: F401  (fixtures)

COMPONENT = """\
name: marker
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hello
      allowedValues: [hello, hi, moin]
phases:
  - name: build
    steps:
      - name: Marker
        action: CreateFile
        inputs:
          - path: /etc/kiln-marker
            content: "{{ Greeting }}"
"""


def recipe_of(request: BuildRequest) -> Recipe:
    """The recipe model of a build request (no files read)."""
    return Recipe.model_validate(YAML(typ="safe").load(request.recipe.text))


@dataclass
class FakeClock:
    now: datetime = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class CatalogRunner:
    """Starts a "build" by recording it running; :meth:`complete` records its image (or fails it)."""

    catalog: Catalog
    started: list[BuildRequest] = field(default_factory=list)
    builds: dict[str, BuildRequest] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    orphans: list[tuple[str | None, str | None]] = field(default_factory=list)
    instant: bool = False  # builds finish as soon as they start
    remote: bool = False  # builds run on queue workers, which outlive the daemon that started them

    def start(self, request: BuildRequest) -> Started:
        name = recipe_of(request).name
        build_id = self.catalog.start_build(recipe_name=name, recipe_version="1.0.0",
                                            recipe_path=str(request.recipe.path), log_path="/nonexistent")  # fmt: skip
        self.started.append(request)
        self.builds[build_id] = request
        if self.instant:
            self.complete()
        return Started(job=f"job-{build_id[:8]}", build_id=build_id)

    def complete(self, ok: bool = True) -> None:
        """End every running build: record its image version (ok) or fail it."""
        for build_id, request in list(self.builds.items()):
            if self.catalog.get_build(build_id).status != "running":
                continue
            if not ok:
                self.catalog.fail_build(build_id, "step failed")
                continue
            text = request.recipe.text
            parents = kiln_parents(recipe_of(request))
            parent_digest = self.catalog.get_image(parents[0]).digest if parents else None
            used = [ComponentRecord(name=ref.registry[0], version=newest_in_range(self.catalog, ref.name or "") or "?",
                                    digest="sha256:" + "0" * 64, parameters={})
                    for ref in recipe_of(request).components if ref.registry]  # fmt: skip
            self.catalog.finish_build(build_id, NewImage(
                name=recipe_of(request).name, version="1.0.0", digest="sha256:" + build_id * 2,
                created=datetime.now(UTC), parent=f"kiln:{parents[0]}" if parents else "debian:bookworm",
                parent_digest=parent_digest, recipe_digest="sha256:" + hashlib.sha256(text.encode()).hexdigest(),
                components=used,
            ))  # fmt: skip

    def state(self, job: str, build_id: str) -> tuple[BuildState, str | None]:
        build = self.catalog.get_build(build_id)
        return ("running" if build.status == "running" else "succeeded" if build.status == "succeeded"
                else "failed"), build.error  # fmt: skip

    def cancel(self, build_id: str) -> bool:
        self.cancelled.append(build_id)
        self.catalog.fail_build(build_id, "cancelled")
        return True

    def stop_orphan(self, job: str | None, build_id: str | None, run_id: str) -> BuildState | None:
        self.orphans.append((job, build_id))
        if build_id and self.catalog.get_build(build_id).status == "running" and not self.remote:
            self.catalog.fail_build(build_id, "interrupted")
        return self.state("", build_id)[0] if build_id else None

    @property
    def images(self) -> list[str]:
        return [recipe_of(r).name for r in self.started]


@dataclass
class World:
    folder: Path
    catalog: Catalog
    store: PipelineStore
    clock: FakeClock
    runner: CatalogRunner

    def recipe(self, name: str, parent: str = "debian:bookworm") -> str:
        (self.folder / "marker.yaml").write_text(COMPONENT)
        (self.folder / f"{name}.recipe.yaml").write_text(
            f"name: {name}\nversion: 1.0.0\nparent: {{image: '{parent}'}}\ncomponents:\n  - path: marker.yaml\n"
        )
        return f"{name}.recipe.yaml"

    def pipeline(self, name: str, body: str = "", parent: str = "debian:bookworm") -> Path:
        path = self.folder / f"{name}.pipeline.yaml"
        path.write_text(f"name: {name}\nrecipe: {self.recipe(name, parent)}\n{body}")
        return path

    def apply(self, *paths: Path) -> list[str]:
        recipes = PipelineRecipes(self.catalog)
        return self.store.apply([item for p in paths for item in load_pipelines(p, recipes)], self.clock())

    def daemon(self, workers: int = 1) -> Daemon:
        recipes = PipelineRecipes(self.catalog)
        scheduler = Scheduler(self.store, CatalogChanges(self.catalog), recipes)
        return Daemon(self.store, self.runner, scheduler, recipes, self.folder, self.clock, workers)


@pytest.fixture
def world(tmp_path: Path, catalog_url: str) -> Iterator[World]:  # noqa: F811 (the imported fixture)
    """On SQLite and on a real PostgreSQL server, like the catalog's own tests."""
    catalog = Catalog.open(catalog_url)
    folder = tmp_path / "files"
    folder.mkdir()
    try:
        yield World(folder, catalog, PipelineStore(catalog), FakeClock(), CatalogRunner(catalog))
    finally:
        catalog.close()
