"""The build: a readable list of stages over one context; everything or nothing is published.

    parent → component build phases (layers) → validate phases → outputs → test phases on a
    fresh instance → catalog

The catalog is written once, in one transaction, after every stage succeeded. A failure marks the
build ``failed`` with its error and log, removes its outputs, and leaves no mounts or scratch.
"""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.build.components import build_component, keep_root, validate_components
from kiln.build.context import BuildContext, BuildOptions
from kiln.build.evidence import collect
from kiln.build.inventory import dpkg_packages
from kiln.build.outputs import write_oci, write_root_outputs
from kiln.build.parent import prepare_parent
from kiln.build.reproducible import check_reproducible
from kiln.build.tests import run_tests
from kiln.catalog import ArtifactRecord, Catalog, ComponentRecord, ImageRecord, NewImage
from kiln.diskspace import DiskFull, as_disk_full, is_disk_full
from kiln.errors import BuildFailed
from kiln.lifecycle.reclaim import reclaim_dead_scratch, tree_size
from kiln.lock import lockfile_from_build, packages_with_hashes, verify_locked, write_lockfile
from kiln.monitor import FanOut, JsonLinesMonitor, MaskingMonitor, Monitor
from kiln.recipes.loader import LoadedRecipe, load_recipe
from kiln.sandbox.overlay import overlay
from kiln.sandbox.tmpfs import ram_scratch
from kiln.secrets import load_secrets, secrets_tmpfs
from kiln.store import Store, file_sha256


@dataclass(frozen=True)
class BuildOutcome:
    build_id: str
    image: ImageRecord
    log_path: Path
    duration: float
    ran_steps: int
    cached_layers: int
    kept_rootfs: Path | None


def keep_documents(ctx: BuildContext) -> list[dict[str, Any]]:
    """Copy every component document next to the artifacts (``kiln test`` re-runs their test phases
    later, whatever happened to the originals); returns their lock entries."""
    assert ctx.output_dir is not None
    entries = []
    folder = ctx.output_dir / "components"
    folder.mkdir(parents=True, exist_ok=True)
    for role, items in (("component", ctx.loaded.components), ("test", ctx.loaded.tests)):
        for item in items:
            target = folder / f"{role}-{item.index:02d}-{item.document.digest[7:19]}.yaml"
            shutil.copyfile(item.document.path, target)
            entries.append(
                {
                    "role": role,
                    "name": item.label,
                    "digest": item.document.digest,
                    "parameters": item.parameters,
                    "phases": item.document.phase_names,
                    "document": str(target.relative_to(ctx.output_dir)),
                }
            )
    return entries


def lock_data(ctx: BuildContext) -> dict[str, Any]:
    """The resolved inputs of this build: enough to reproduce its package set and components."""
    assert ctx.parent is not None
    recipe = ctx.loaded.recipe
    return {
        "recipe": {"path": str(ctx.loaded.path), "digest": ctx.loaded.digest},
        "parent": {
            "image": recipe.parent.image,
            "key": ctx.parent.key,
            "sources": ctx.parent.sources,
            "source_date_epoch": ctx.epoch,
            "debs": ctx.parent.debs,
        },
        "components": keep_documents(ctx),
        "layers": [layer.key for layer in ctx.layers],
        "test_instances": ctx.loaded.recipe.test_instance_kinds(),
        "boot": ctx.disks[0][1].boot if ctx.disks else None,
        "working_directory": ctx.loaded.recipe.settings.working_directory,
    }


def write_lock(ctx: BuildContext, root: Path) -> None:
    """The lock file of this build (every .deb with its sha256); with --locked, prove it matches."""
    assert ctx.output_dir is not None
    ctx.lock_data = lock_data(ctx)
    lock = lockfile_from_build(ctx.lock_data, packages_with_hashes(root, ctx.store.deb_cache))
    path = ctx.output_dir / "kiln.lock.json"
    write_lockfile(path, lock)
    ctx.artifacts.append(
        {
            "kind": "lock",
            "path": str(path),
            "digest": "sha256:" + file_sha256(path),
            "size": path.stat().st_size,
        }
    )
    if ctx.options.locked is not None:
        differences = verify_locked(ctx.options.locked, lock.packages)
        if differences:
            raise BuildFailed("the built package set differs from the lock file:\n" + "\n".join(differences))
        ctx.monitor.info(f"locked: {len(lock.packages)} packages exactly as in the lock file")


def inspect_root(ctx: BuildContext) -> None:
    """Everything made from the merged root, in one read-only view: root outputs and the inventory."""
    work = ctx.work_dir("final")
    # Writable (tools such as oscap-chroot write scratch files into the root) but thrown away.
    with overlay(ctx.lowers(), work / "upper", work) as root:
        write_root_outputs(ctx, root)
        keep_root(ctx, root)
        with ctx.monitor.stage("inventory", "inventory and lock file") as result:
            ctx.packages = dpkg_packages(root)
            result["packages"] = len(ctx.packages)
            write_lock(ctx, root)
        collect(ctx, root)


def finish(ctx: BuildContext, catalog: Catalog) -> ImageRecord:
    """Record the image version in one transaction."""
    recipe = ctx.loaded.recipe
    assert ctx.manifest_digest is not None and ctx.parent is not None
    image = NewImage(
        name=recipe.name,
        version=recipe.version,
        digest=ctx.manifest_digest,
        created=datetime.now(UTC),
        parent=recipe.parent.image,
        parent_digest=ctx.layers[0].blob.result().digest,
        recipe_digest=ctx.loaded.digest,
        description=recipe.description,
        size=ctx.size,
        components=[
            ComponentRecord(
                name=c.label, version=c.version, digest=c.document.digest, parameters=c.parameters
            )
            for c in ctx.loaded.components
        ],
        artifacts=[ArtifactRecord(**a) for a in ctx.artifacts],
        evidence=ctx.evidence,
        packages=ctx.packages,
        lock=ctx.lock_data,
    )
    with ctx.monitor.stage("catalog", "record image version"):
        return catalog.finish_build(ctx.build_id, image)


def settle_parent(ctx: BuildContext) -> None:
    """Wait for a new parent's copy into the cache (it reads the memory scratch the build is about to
    drop). The image does not depend on it: a failed copy only means the next build bootstraps again."""
    if ctx.parent is None or ctx.parent.persisted is None:
        return
    if not ctx.parent.persisted.done():
        ctx.monitor.info("finishing the new parent's copy into the cache")
    try:
        ctx.parent.persisted.result()
    except Exception as exc:
        ctx.monitor.warning(f"the parent root could not be cached: {exc}")


def _disk_full(exc: BaseException, ctx: BuildContext | None, store: Store) -> DiskFull | None:
    """A full disk named with its path and the size of the image's root (what the outputs are made of)."""
    if not is_disk_full(exc):
        return None
    needed = sum(tree_size(p) for p in ctx.lowers()) if ctx is not None and ctx.layers else None
    return as_disk_full(exc, ctx.output_dir if ctx and ctx.output_dir else store.home, needed=needed)


def run_stages(ctx: BuildContext, catalog: Catalog) -> ImageRecord:
    prepare_parent(ctx)
    for component in ctx.loaded.components:
        build_component(ctx, component)
    validate_components(ctx)
    write_oci(ctx)
    inspect_root(ctx)
    run_tests(ctx)
    if ctx.options.check_reproducible:
        check_reproducible(ctx, ctx.monitor)
    return finish(ctx, catalog)


def build(recipe_path: Path, store: Store, monitor: Monitor, options: BuildOptions = BuildOptions(),
          loaded: LoadedRecipe | None = None) -> BuildOutcome:  # fmt: skip
    """Build ``recipe_path``; raise a KilnError (and record a failed build) if anything fails."""
    loaded = loaded or load_recipe(recipe_path)  # validation first: nothing is written on bad input
    secrets = load_secrets(loaded.recipe.secrets, base_dir=loaded.path.parent)
    reclaim_dead_scratch(store)  # what killed builds left; live builds hold their scratch's lock
    catalog = Catalog.open(store.database_url)
    log_path = store.home / "logs" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"
    build_id = catalog.start_build(
        recipe_name=loaded.recipe.name,
        recipe_version=loaded.recipe.version,
        recipe_path=str(loaded.path),
        log_path=str(log_path),
    )
    log = JsonLinesMonitor(log_path)
    events = MaskingMonitor(FanOut([monitor, log]), secrets.masker)
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiln-layer")
    ctx: BuildContext | None = None
    try:
        output = store.output_dir(loaded.recipe.name, loaded.recipe.version, build_id)
        owner = {"build": build_id, "output": str(output)}
        with (
            store.scratch(f"build-{build_id[:12]}-", owner) as scratch,
            ram_scratch(scratch / "ram") as in_ram,
            secrets_tmpfs(secrets, scratch / "secrets") as secrets_dir,
        ):
            ctx = BuildContext(loaded, store, options, events, build_id, scratch, executor)
            ctx.ram = scratch / "ram" if in_ram else None
            ctx.secrets, ctx.secrets_dir = secrets, secrets_dir
            ctx.secret_identity = secrets.identity(store.cache) if secrets else {}
            try:
                with events.stage(
                    "build", f"build {loaded.recipe.name} {loaded.recipe.version}", build=build_id
                ):
                    image = run_stages(ctx, catalog)
            finally:  # before the memory scratch goes: layer writers and the parent's copy read it
                executor.shutdown(wait=True, cancel_futures=True)
                settle_parent(ctx)
                ctx.holds.close()  # the leases on cache entries this build used
    except BaseException as exc:  # the layer writers were stopped before the scratch went (above)
        if ctx is not None and ctx.output_dir is not None:
            shutil.rmtree(ctx.output_dir, ignore_errors=True)
        secrets.masker.scrub(exc)  # the message is recorded and shown: no secret value in it
        full = _disk_full(exc, ctx, store)
        error = full or exc
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else (str(error) or type(exc).__name__)
        message = secrets.masker.mask(message)
        try:
            catalog.fail_build(build_id, message)
        except Exception as unrecorded:  # the catalog's own disk may be the full one
            events.warning(f"could not record the build as failed ({unrecorded}); the next command will")
        if full is not None:
            raise full from exc
        raise
    finally:
        executor.shutdown(wait=True)
        log.close()
        catalog.close()
    assert ctx is not None
    return BuildOutcome(
        build_id=build_id,
        image=image,
        log_path=log_path,
        duration=(datetime.now(UTC) - ctx.started).total_seconds(),
        ran_steps=ctx.ran_steps,
        cached_layers=sum(1 for layer in ctx.layers if layer.cached),
        kept_rootfs=ctx.kept_rootfs,
    )
