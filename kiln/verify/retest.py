"""``kiln test``: run an image's test phases again, on demand, on fresh instances of a recorded version.

A build keeps a copy of every component document beside its artifacts and records, in its lock data,
which were kept (:class:`KeptDocument`), where its tests ran and how its disk boots. :class:`RetestInputs`
is that part of the lock data, typed; :func:`plan_retest` turns it (plus extra documents) into a
:class:`RetestPlan`, and :func:`run_retest` runs the plan on each instance kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import Issue, KilnError, ValidationFailed
from kiln.monitor import Monitor
from kiln.sandbox.bwrap import SandboxOptions
from kiln.store import Store
from kiln.toe.document import load_document
from kiln.verify.phases import TestDocument, test_on_container, test_on_vm

InstanceKind = Literal["container", "vm"]
INSTANCE_KINDS: tuple[InstanceKind, ...] = ("container", "vm")


class UnknownInstance(KilnError):
    """``--instance`` names no kind of instance Kiln can make."""

    exit_code = 2


class KeptDocument(BaseModel):
    """A component document the build copied beside its artifacts (one entry of the lock data)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    role: Literal["component", "test"] = "component"
    name: str
    version: str | None = None  # as the image records it: a registry version, "builtin" or "local"
    digest: str
    parameters: dict[str, str] = Field(default_factory=dict)
    phases: list[str] = Field(default_factory=list)
    document: str
    """The copy's path, relative to the build's output directory."""


class RetestInputs(BaseModel):
    """What a re-test needs from the lock data recorded with an image (the rest is ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    components: list[KeptDocument] = Field(default_factory=list)
    test_instances: list[InstanceKind] | None = None
    boot: Literal["uefi", "bios"] | None = None
    working_directory: str = "/tmp"

    @classmethod
    def from_lock(cls, ref: str, lock: Mapping[str, Any] | None) -> RetestInputs:
        try:
            return cls.model_validate(lock or {})
        except ValidationError as exc:
            raise KilnError(f"{ref}: its recorded lock data cannot be read for a re-test: {exc}") from None


def _kind(value: str) -> InstanceKind:
    for kind in INSTANCE_KINDS:
        if kind == value:
            return kind
    raise UnknownInstance(f"unknown instance kind '{value}' (container or vm)")


@dataclass(frozen=True)
class RetestPlan:
    ref: str
    tests: list[TestDocument]
    kinds: list[InstanceKind]
    layout: Path | None
    """The OCI layout a container instance is made from."""
    disk: Path | None
    """The qcow2 or raw disk a VM instance boots."""
    boot: Literal["uefi", "bios"]
    workdir: str


def plan_retest(
    ref: str,
    artifacts: Mapping[str, Path],
    inputs: RetestInputs,
    *,
    instance: str | None = None,
    documents: Sequence[Path] = (),
) -> RetestPlan:
    """The kept documents with a test phase, then ``documents``, on ``instance`` (default: the kinds the
    image was tested on when built). Every invalid extra document is reported at once (exit code 2)."""
    kinds: list[InstanceKind] = (
        [_kind(instance)] if instance else list(inputs.test_instances or ["container"])
    )
    layout = artifacts.get("oci")
    tests: list[TestDocument] = []
    if layout is not None:
        for kept in inputs.components:
            if "test" in kept.phases:
                doc = load_document(layout.parent / kept.document)
                tests.append(TestDocument(kept.name, doc, dict(kept.parameters)))
    issues: list[Issue] = []
    for path in documents:
        try:
            doc = load_document(path)
        except ValidationFailed as exc:
            issues.extend(exc.issues)
            continue
        tests.append(TestDocument(doc.name or str(path), doc, {}))
    if issues:
        raise ValidationFailed(issues)
    if not tests:
        raise KilnError(f"{ref} has no test phases", hint="pass test documents with --documents")
    disk = next((artifacts[k] for k in ("qcow2", "raw") if k in artifacts), None)
    for kind in kinds:
        if kind == "container" and layout is None:
            raise KilnError(f"{ref} has no OCI layout to make a container instance from")
        if kind == "vm" and disk is None:
            raise KilnError(f"{ref} has no qcow2 or raw disk to boot")
    boot: Literal["uefi", "bios"] = "bios" if inputs.boot == "bios" else "uefi"
    return RetestPlan(ref, tests, kinds, layout, disk, boot, inputs.working_directory)


def run_retest(
    plan: RetestPlan,
    *,
    scratch: Path,
    monitor: Monitor,
    timeout: float = 900,
    accel: Literal["auto", "kvm", "tcg"] = "auto",
) -> None:
    """Run the plan's tests on a fresh instance of each kind; a failing test raises ``TestsFailed``."""
    for kind in plan.kinds:
        if kind == "container":
            assert plan.layout is not None
            test_on_container(plan.layout, plan.tests, options=SandboxOptions(), workdir=plan.workdir,
                              scratch=scratch, monitor=monitor)  # fmt: skip
        else:
            assert plan.disk is not None
            test_on_vm(plan.disk, plan.tests, boot=plan.boot, timeout=timeout, scratch=scratch,
                       monitor=monitor, accel=accel)  # fmt: skip


def retest(
    store: Store,
    ref: str,
    *,
    monitor: Monitor,
    instance: str | None = None,
    documents: Sequence[Path] = (),
    timeout: float = 900,
    accel: Literal["auto", "kvm", "tcg"] = "auto",
) -> RetestPlan:
    """Re-test the catalogued image ``ref`` (see :func:`plan_retest`); returns what ran."""
    from kiln.catalog import Catalog  # the catalog's engine is loaded only when an image is named
    from kiln.lifecycle.states import require_usable

    with Catalog.open(store.database_url) as catalog:
        record = catalog.get_image(ref)
        lock = catalog.lock(record.ref)
    warning = require_usable(record, "tested on a new instance")
    if warning:
        monitor.warning(warning)
    artifacts = {a.kind: store.artifact_file(a) for a in record.artifacts}
    plan = plan_retest(
        record.ref,
        artifacts,
        RetestInputs.from_lock(record.ref, lock),
        instance=instance,
        documents=documents,
    )
    with store.scratch("test-") as scratch:
        run_retest(plan, scratch=scratch, monitor=monitor, timeout=timeout, accel=accel)
    return plan
