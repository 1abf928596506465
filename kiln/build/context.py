"""What one build knows: frozen inputs (recipe, options) and the state its stages fill in."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.build.resolved import ResolvedParent
from kiln.evidence.facts import EvidenceFile
from kiln.layers.tar import LayerBlob
from kiln.lock import LockedRepo
from kiln.models import Artifact, BuildOptions, Evidence, Package
from kiln.monitor import Monitor
from kiln.outputs.disk import DiskOptions
from kiln.recipes.loader import LoadedRecipe
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import Bind
from kiln.secrets import Secrets
from kiln.settings import Settings
from kiln.store import Store

__all__ = ["BuildContext", "BuildOptions", "Layer"]


@dataclass
class Layer:
    """One layer of the image: the parent root or a component's overlay upper directory."""

    key: str
    tree: Path  # the directory overlayfs stacks (parent rootfs or upper dir)
    label: str
    created_by: str
    cached: bool
    blob: Future[LayerBlob]
    chain: dict[str, Any] = field(default_factory=dict)
    component_index: int | None = None
    stacked: bool = True  # False: a parent image's upper layer, whose content the bottom tree holds
    chain_key: str | None = None  # what the next layer's key chains on, when not ``key`` (see link)

    @property
    def link(self) -> str:
        """The key the next layer's key is made from. Differs from ``key`` (the cache entry) for an
        archive-independent component, whose entry is found across versions of its parent."""
        return self.chain_key or self.key


@dataclass
class BuildContext:
    loaded: LoadedRecipe
    store: Store
    options: BuildOptions
    monitor: Monitor
    build_id: str
    scratch: Path
    executor: ThreadPoolExecutor
    settings: Settings = field(default_factory=Settings)
    epoch_override: int | None = None  # the request's SOURCE_DATE_EPOCH, over the recipe's
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    parent: ParentRoot | None = None
    image_parent: ResolvedParent | None = None  # a parent that is an image (kiln.build.imageparent)
    parent_config: dict[str, Any] | None = None  # that image's runtime config (the child inherits it)
    epoch: int = 0
    # The layer key chain with the parent's version left out, while every component so far is
    # archive-independent (kiln.build.components); None once one is not, or for image parents.
    neutral_key: str | None = None
    layers: list[Layer] = field(default_factory=list)
    apt_binds: list[Bind] = field(default_factory=list)
    output_dir: Path | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    manifest_digest: str | None = None
    size: int = 0
    kept_rootfs: Path | None = None
    tag: str = ""
    disks: list[tuple[Path, DiskOptions]] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)
    evidence_files: list[EvidenceFile] = field(default_factory=list)  # made from the root, unsigned
    evidence: list[Evidence] = field(default_factory=list)  # all of it, provenance last
    tested_on: list[str] = field(default_factory=list)
    requester: str | None = None  # who asked for the build (BuildRequest.requester), as recorded
    tests_skipped: str | None = None  # why the test stage did not run (the request turned it off)
    lock_repo: LockedRepo | None = None  # when building --locked
    lock_data: dict[str, Any] | None = None
    ran_steps: int = 0
    ram: Path | None = None  # a tmpfs for overlay upper directories, when memory allows
    secrets: Secrets = field(default_factory=Secrets)
    secrets_dir: Path | None = None  # their tmpfs, bound at /run/secrets in build and validate steps
    secret_identity: dict[str, str] = field(default_factory=dict)  # what cache keys hold of them
    holds: ExitStack = field(default_factory=ExitStack)  # leases on the cache entries this build uses

    def work_dir(self, name: str) -> Path:
        """Where an overlay's upper and work directories go: in memory when possible (dpkg's syncs)."""
        return (self.ram or self.scratch) / name

    @property
    def recipe_name(self) -> str:
        return self.loaded.recipe.name

    def lowers(self) -> list[Path]:
        """Layer trees for an overlay mount, topmost first."""
        return [layer.tree for layer in reversed(self.layers) if layer.stacked]
