"""Typed models that cross package boundaries: what a build is asked to do and what it produced.

Everything here is a frozen pydantic model that round-trips through JSON, so a request can travel
through a job queue and a product can be read by another process (the API, a worker, a scheduler).
The catalog's public records (``kiln.catalog.ArtifactRecord`` …) are these same classes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiln.lock.model import LockFile

# SOURCE_DATE_EPOCH's range: a disk's FAT boot partition stores 1980..2107 and nothing else.
EPOCH_MIN = 315532800  # 1980-01-01T00:00:00Z
EPOCH_MAX = 4354819199  # 2107-12-31T23:59:59Z


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Component(_Model):
    """A component as it went into an image: its document digest and the parameters it ran with
    (AWSTOE parameters are strings; numbers written unquoted in YAML are kept as their text)."""

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    name: str
    version: str
    digest: str
    parameters: dict[str, str] = Field(default_factory=dict)


class Artifact(_Model):
    """An output of the build: ``oci``, ``oci-archive``, ``qcow2``, ``raw``, ``lock`` ...; ``digest`` is
    the file's sha256 (for an OCI layout, its manifest digest), ``size`` its bytes (for an OCI layout,
    its compressed layers)."""

    kind: str
    path: str
    digest: str
    size: int

    @property
    def file(self) -> Path:
        return Path(self.path)


class Evidence(_Model):
    """A proof stored with the image: SBOM, vulnerability report, compliance report, provenance, ..."""

    kind: str
    path: str
    digest: str
    summary: dict[str, Any] = Field(default_factory=dict)


class Package(_Model):
    """An installed package of the image (dpkg), indexed for "which images contain X < V" queries."""

    name: str
    version: str
    architecture: str = ""
    source: str = ""
    source_version: str = ""


class BuildOptions(_Model):
    """How to build (not what): caching, debugging aids, checks."""

    no_cache: bool = False
    keep_rootfs: bool = False
    refresh_parent: bool = False
    refresh: bool = False  # a new parent from the current archive; components re-run (kiln.build.freshness)
    check_reproducible: bool = False
    locked: LockFile | None = None  # reproduce exactly this package set
    strict: bool = False  # warnings (AWSTOE quirks, a version rebuilt from another recipe) are errors
    # the test phases (kiln.build.tests): not run at all (recorded with the requester), or bounded in time
    skip_tests: bool = False
    test_timeout: int | None = Field(None, ge=1, le=86400)  # seconds for the whole test stage


class RecipeSource(_Model):
    """A recipe's text and where it came from: relative component paths resolve against ``path``'s
    folder, and errors name ``path``."""

    text: str
    path: Path
    # component documents by file name, beside the recipe: an uploaded recipe carries them, so a worker
    # on another machine builds from the request alone (kiln.executors.uploads)
    documents: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> RecipeSource:
        """The recipe file ``path`` (regular files only, size-capped, UTF-8: see kiln.inputfile)."""
        from kiln.inputfile import read_input

        return cls(text=read_input(path), path=path.absolute())


class QueuedAttempt(_Model):
    """A build the queue executor registered before it ran: its id and the attempt (fencing token) a
    worker claimed; only this attempt may record the build's result."""

    build_id: str
    attempt: int


class BuildRequest(_Model):
    """Everything one build needs, serialisable: it can be queued, logged, replayed."""

    recipe: RecipeSource
    data_dir: Path
    options: BuildOptions = BuildOptions()
    source_date_epoch: int | None = None  # over the recipe's and the archive's (SOURCE_DATE_EPOCH)
    # name -> "env:VAR" | "file:PATH", over the recipe's own sources
    secrets: dict[str, str] = Field(default_factory=dict)
    requester: str | None = None  # who asked (a user, a token, a pipeline): recorded, never trusted
    # worker capabilities needed over the recipe's own (architecture, qemu for VM tests): kvm, disk>=50G
    requires: list[str] = Field(default_factory=list)
    queued: QueuedAttempt | None = None  # set by a queue worker: run this registered build

    @field_validator("source_date_epoch")
    @classmethod
    def _epoch(cls, value: int | None) -> int | None:
        if value is not None and not EPOCH_MIN <= value <= EPOCH_MAX:
            raise ValueError(f"must be from {EPOCH_MIN} (1980-01-01) to {EPOCH_MAX} (2107-12-31)")
        return value


class LayerInfo(_Model):
    key: str  # the cache key (content-addressed over everything that made the layer)
    digest: str  # the compressed OCI layer blob
    label: str
    cached: bool


class Product(_Model):
    """What a build produced, before anything is recorded: the image, its artifacts and evidence."""

    build_id: str
    name: str
    version: str
    description: str = ""
    digest: str  # the OCI manifest digest: the image's identity
    created: datetime
    parent: str
    parent_digest: str | None = None
    recipe_digest: str
    source_date_epoch: int  # what every timestamp in the artifacts is clamped to
    size: int
    layers: list[LayerInfo]
    components: list[Component]
    artifacts: list[Artifact]
    evidence: list[Evidence] = Field(default_factory=list)
    packages: list[Package] = Field(default_factory=list)
    lock: dict[str, Any] | None = None
    tested_on: list[str] = Field(default_factory=list)  # instance kinds whose test phases passed
    ran_steps: int = 0
    kept_rootfs: Path | None = None

    @property
    def cached_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.cached)

    def artifact(self, kind: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)
