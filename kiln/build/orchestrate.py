"""The build: a readable list of stages over one context; everything or nothing is published.

    parent → component build phases (layers) → validate phases → outputs → inventory, SBOMs, scan,
    compliance → test phases on a fresh instance → signed provenance          (produce → Product)
    → [a second, independent produce and a comparison: --check-reproducible]
    → catalog, in one transaction                                               (record)

:func:`run_build` is the one entry point (the CLI, the tests, later the API's workers and the
scheduler): a :class:`~kiln.models.BuildRequest` in, a :class:`BuildResult` out. A failure marks the
build ``failed`` with its error and log, removes its outputs, and leaves no mounts or scratch.

The process running a build should first contain itself (kiln.sandbox.namespace.contain_process_tree,
as ``kiln build`` does) so that nothing the build starts outlives it, even on SIGKILL; that must
happen before threads start, so it is the process owner's job, not this module's.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kiln.build.components import build_component, keep_root, validate_components
from kiln.build.context import BuildContext
from kiln.build.evidence import collect, sign
from kiln.build.outputs import write_oci, write_root_outputs
from kiln.build.package_index import dpkg_packages
from kiln.build.parent import prepare_parent
from kiln.build.preflight import preflight
from kiln.build.reproducible import compare_products, twin_store
from kiln.build.resolved import ResolvedParent, resolve_parent_image
from kiln.build.tests import run_tests
from kiln.catalog import Catalog, ImageRecord, NewImage
from kiln.diskspace import DiskFull, as_disk_full, is_disk_full
from kiln.errors import BuildFailed, Issue, KilnError, ValidationFailed, display_path
from kiln.lifecycle.reclaim import reclaim_dead_scratch, tree_size
from kiln.lock import lockfile_from_build, packages_with_hashes, verify_locked, write_lockfile
from kiln.models import Artifact, BuildOptions, BuildRequest, Component, LayerInfo, Product
from kiln.monitor import FanOut, JsonLinesMonitor, MaskingMonitor, Monitor
from kiln.recipes.loader import LoadedRecipe, ResolvedComponent, load_recipe
from kiln.registry.resolver import data_dir_registry
from kiln.sandbox.overlay import overlay
from kiln.sandbox.tmpfs import ram_scratch
from kiln.secrets import Secrets, load_secrets, secrets_tmpfs
from kiln.settings import Settings
from kiln.store import Store, file_sha256
from kiln.verify.retest import KeptDocument


@dataclass(frozen=True)
class BuildResult:
    """A recorded build: what it produced and the catalog's record of it."""

    build_id: str
    product: Product
    image: ImageRecord
    log_path: Path
    duration: float

    @property
    def ran_steps(self) -> int:
        return self.product.ran_steps

    @property
    def cached_layers(self) -> int:
        return self.product.cached_layers

    @property
    def kept_rootfs(self) -> Path | None:
        return self.product.kept_rootfs


@dataclass(frozen=True)
class _Inputs:
    """What every produce() of one request shares (the reproducibility check produces twice)."""

    loaded: LoadedRecipe
    settings: Settings
    secrets: Secrets
    epoch: int | None
    parent: ResolvedParent | None = None  # an image parent, resolved once before the build starts
    requester: str | None = None  # who asked (named where the request changed how it built: skipped tests)


def keep_documents(ctx: BuildContext) -> list[dict[str, Any]]:
    """Copy every component document next to the artifacts (``kiln test`` re-runs their test phases
    later, whatever happened to the originals); returns their lock entries."""
    assert ctx.output_dir is not None
    entries = []
    folder = ctx.output_dir / "components"
    folder.mkdir(parents=True, exist_ok=True)
    roles: tuple[tuple[Literal["component", "test"], list[ResolvedComponent]], ...] = (
        ("component", ctx.loaded.components),
        ("test", ctx.loaded.tests),
    )
    for role, items in roles:
        for item in items:
            target = folder / f"{role}-{item.index:02d}-{item.document.digest[7:19]}.yaml"
            shutil.copyfile(item.document.path, target)
            kept = KeptDocument(
                role=role,
                name=item.label,
                version=item.version,
                digest=item.document.digest,
                parameters=item.parameters,
                phases=item.document.phase_names,
                document=str(target.relative_to(ctx.output_dir)),
            )
            entries.append(kept.model_dump(mode="json"))
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
            "archive": [s.model_dump() for s in ctx.parent.archive],
            **(ctx.image_parent.lock_entry() if ctx.image_parent is not None else {}),
        },
        "components": keep_documents(ctx),
        "layers": [layer.key for layer in ctx.layers],
        "test_instances": ctx.loaded.recipe.test_instance_kinds(),
        "boot": ctx.disks[0][1].boot if ctx.disks else None,
        "working_directory": ctx.loaded.recipe.settings.working_directory,
        # `kiln scan IMAGE --fail-on` honours the allow-list the build's gate applied
        "scan": recipe.scan.model_dump(mode="json") if recipe.scan is not None else None,
    }


def write_lock(ctx: BuildContext, root: Path) -> None:
    """The lock file of this build (every .deb with its sha256); with --locked, prove it matches."""
    assert ctx.output_dir is not None
    ctx.lock_data = lock_data(ctx)
    lock = lockfile_from_build(ctx.lock_data, packages_with_hashes(root, ctx.store.deb_cache))
    path = ctx.output_dir / "kiln.lock.json"
    write_lockfile(path, lock)
    ctx.artifacts.append(
        Artifact(kind="lock", path=str(path), digest="sha256:" + file_sha256(path), size=path.stat().st_size)
    )
    if ctx.options.locked is not None:
        differences = verify_locked(ctx.options.locked, lock.packages)
        if differences:
            raise BuildFailed("the built package set differs from the lock file:\n" + "\n".join(differences))
        ctx.monitor.info(f"locked: {len(lock.packages)} packages exactly as in the lock file")


def inspect_root(ctx: BuildContext, *, verify: bool = True) -> None:
    """Everything made from the merged root, in one read-only view: root outputs, the inventory, and
    (``verify``) the SBOMs, scan and compliance evidence."""
    work = ctx.work_dir("final")
    # Writable (tools such as oscap-chroot write scratch files into the root) but thrown away.
    with overlay(ctx.lowers(), work / "upper", work) as root:
        write_root_outputs(ctx, root)
        keep_root(ctx, root)
        with ctx.monitor.stage("inventory", "inventory and lock file") as result:
            ctx.packages = dpkg_packages(root)
            result["packages"] = len(ctx.packages)
            write_lock(ctx, root)
        if verify:
            collect(ctx, root)


def product_of(ctx: BuildContext) -> Product:
    """The typed result of the stages (everything :func:`record` needs, nothing it has to look up)."""
    recipe = ctx.loaded.recipe
    assert ctx.manifest_digest is not None and ctx.parent is not None
    return Product(
        build_id=ctx.build_id,
        name=recipe.name,
        version=recipe.version,
        description=recipe.description,
        digest=ctx.manifest_digest,
        created=datetime.now(UTC),
        parent=recipe.parent.image,
        parent_digest=parent_digest(ctx),
        recipe_digest=ctx.loaded.digest,
        source_date_epoch=ctx.epoch,
        size=ctx.size,
        layers=[
            LayerInfo(key=lay.key, digest=lay.blob.result().digest, label=lay.label, cached=lay.cached)
            for lay in ctx.layers
        ],
        components=[
            Component(name=c.label, version=c.version, digest=c.document.digest, parameters=c.parameters)
            for c in ctx.loaded.components
        ],
        artifacts=list(ctx.artifacts),
        evidence=list(ctx.evidence),
        packages=list(ctx.packages),
        lock=ctx.lock_data,
        tested_on=list(ctx.tested_on),
        ran_steps=ctx.ran_steps,
        kept_rootfs=ctx.kept_rootfs,
    )


def parent_digest(ctx: BuildContext) -> str:
    """An image parent's manifest digest; a bootstrapped parent's layer digest."""
    if ctx.image_parent is not None:
        return ctx.image_parent.digest
    return ctx.layers[0].blob.result().digest


def record(catalog: Catalog, product: Product, monitor: Monitor, attempt: int | None = None) -> ImageRecord:
    """Record the image version in one transaction (fenced by the queue's ``attempt``, if queued)."""
    image = NewImage(
        name=product.name,
        version=product.version,
        digest=product.digest,
        created=product.created,
        parent=product.parent,
        parent_digest=product.parent_digest,
        recipe_digest=product.recipe_digest,
        description=product.description,
        size=product.size,
        components=product.components,
        artifacts=product.artifacts,
        evidence=product.evidence,
        packages=product.packages,
        lock=product.lock,
    )
    with monitor.stage("catalog", "record image version"):
        return catalog.finish_build(product.build_id, image, attempt=attempt)


def share(product: Product, settings: Settings, store: Store, monitor: Monitor) -> None:
    """With ``KILN_STORE_URL``: put the artifacts and evidence into the shared store, by digest, so any
    machine can read what the catalog is about to reference."""
    if not settings.store_url:
        return
    from kiln.objectstore import open_object_store, publish

    shared = open_object_store(settings.store_url, store.home)
    files = [(a.kind, a.path, a.digest) for a in product.artifacts]
    files += [(e.kind, e.path, e.digest) for e in product.evidence]
    with monitor.stage("share", f"artifacts and evidence to {shared.url}"):
        publish(shared, files)


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


def run_stages(ctx: BuildContext, *, verify: bool = True) -> Product:
    """The stages, in order. ``verify`` False (the reproducibility twin) stops after the artifacts."""
    prepare_parent(ctx)
    for component in ctx.loaded.components:
        build_component(ctx, component)
    validate_components(ctx)
    write_oci(ctx)
    inspect_root(ctx, verify=verify)
    if verify:
        run_tests(ctx)
        sign(ctx)  # last: a build whose tests fail leaves no signed statement behind
    return product_of(ctx)


def produce(inputs: _Inputs, store: Store, options: BuildOptions, monitor: Monitor, build_id: str, *,
            verify: bool = True) -> Product:  # fmt: skip
    """Run the stages in a scratch directory of their own (in memory where possible); the artifacts
    stay in the build's output directory, which is removed if anything fails."""
    loaded, secrets = inputs.loaded, inputs.secrets
    output = store.output_dir(loaded.recipe.name, loaded.recipe.version, build_id)
    owner = {"build": build_id, "output": str(output)}
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiln-layer")
    ctx: BuildContext | None = None
    try:
        with (
            store.scratch(f"build-{build_id[:12]}-", owner) as scratch,
            ram_scratch(scratch / "ram", inputs.settings.tmpfs) as in_ram,
            secrets_tmpfs(secrets, scratch / "secrets") as secrets_dir,
        ):
            ctx = BuildContext(loaded, store, options, monitor, build_id, scratch, executor,
                               settings=inputs.settings, epoch_override=inputs.epoch)  # fmt: skip
            ctx.ram = scratch / "ram" if in_ram else None
            ctx.image_parent = inputs.parent
            ctx.requester = inputs.requester
            ctx.secrets, ctx.secrets_dir = secrets, secrets_dir
            ctx.secret_identity = secrets.identity(store.cache) if secrets else {}
            try:
                return run_stages(ctx, verify=verify)
            finally:  # before the memory scratch goes: layer writers and the parent's copy read it
                executor.shutdown(wait=True, cancel_futures=True)
                settle_parent(ctx)
                ctx.holds.close()  # the leases on cache entries this build used
    except BaseException as exc:
        shutil.rmtree(output, ignore_errors=True)
        full = _disk_full(exc, ctx, store)
        if full is not None:
            raise full from exc
        raise
    finally:
        executor.shutdown(wait=True)


def check_reproducible(inputs: _Inputs, store: Store, options: BuildOptions, first: Product,
                       monitor: Monitor) -> None:  # fmt: skip
    """Produce the image a second time, independently, in a throwaway data dir that shares only the
    parent root, .debs and apt lists, with the first build's SOURCE_DATE_EPOCH; compare the artifacts."""
    second_options = options.model_copy(update={"check_reproducible": False, "no_cache": False,
                                                "keep_rootfs": False})  # fmt: skip
    with store.scratch("reproduce-") as home:
        twin = twin_store(store, home)
        with monitor.stage("reproducible", "second build from the same inputs (reproducibility check)"):
            # The first build's timestamp, even if the archive moved on since.
            again = _Inputs(
                inputs.loaded, inputs.settings, inputs.secrets, first.source_date_epoch, inputs.parent
            )
            second = produce(again, twin, second_options, monitor, uuid.uuid4().hex, verify=False)
        compare_products(first, second, monitor)


def _recipe_secrets(loaded: LoadedRecipe, overrides: Mapping[str, str]) -> list[Any]:
    """The recipe's secret declarations with the request's sources put in place of theirs."""
    declared = {spec.name for spec in loaded.recipe.secrets}
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise KilnError(f"the request names secrets the recipe does not declare: {', '.join(unknown)}",
                        hint="declare them under the recipe's `secrets:`")  # fmt: skip
    return [
        spec.model_copy(update={"source": overrides[spec.name]}) if spec.name in overrides else spec
        for spec in loaded.recipe.secrets
    ]


def load_request(request: BuildRequest, settings: Settings) -> LoadedRecipe:
    """The request's recipe, validated; ``NAME@PATTERN`` components resolved in the data dir's catalog
    (opened only for such a reference)."""
    registry = data_dir_registry(request.data_dir, settings)
    try:
        return load_recipe(request.recipe.path, text=request.recipe.text, registry=registry)
    finally:
        registry.close()


def run_build(request: BuildRequest, *, monitor: Monitor, settings: Settings | None = None,
              environ: Mapping[str, str] | None = None) -> BuildResult:  # fmt: skip
    """Build what ``request`` asks for and record it; raise a KilnError (and record a failed build) if
    anything fails.

    ``settings`` are the process's (cache directory, catalog, RAM scratch, accelerator, signing key;
    defaults when None); ``environ`` is where the recipe's ``env:`` secrets are read from (nothing when
    None). Neither the environment nor any other global state is read or changed.
    """
    settings = settings or Settings()
    loaded = load_request(request, settings)  # nothing is written on bad input
    store = Store.open(request.data_dir, settings)
    specs = _recipe_secrets(loaded, request.secrets)
    secrets = load_secrets(specs, base_dir=loaded.path.parent, environ=environ or {})
    reclaim_dead_scratch(store)  # what killed builds left; live builds hold their scratch's lock
    preflight(loaded, store, settings)  # a missing key or an empty gate fails now, not after the build
    catalog = Catalog.open(store.database_url)
    try:
        # An image parent is resolved to one exact version now: an unknown, unmatched, disabled or
        # retired parent fails before the build is even recorded.
        parent = resolve_parent_image(loaded, catalog, store, monitor)
        inputs = _Inputs(loaded, settings, secrets, request.source_date_epoch, parent, request.requester)
        warnings = [*loaded.warnings, *version_warnings(loaded, catalog)]
        if request.options.strict and warnings:
            raise ValidationFailed(warnings)
    except BaseException:
        catalog.close()
        raise
    log_path = store.home / "logs" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"
    recipe = {"recipe_name": loaded.recipe.name, "recipe_version": loaded.recipe.version,
              "recipe_path": str(loaded.path), "log_path": str(log_path)}  # fmt: skip
    queued = request.queued
    attempt = queued.attempt if queued else None
    try:
        build_id = (catalog.adopt_build(queued.build_id, queued.attempt, **recipe) if queued
                    else catalog.start_build(**recipe))  # fmt: skip
    except BaseException:
        catalog.close()
        raise
    log = JsonLinesMonitor(log_path)
    events = MaskingMonitor(FanOut([monitor, log]), secrets.masker)
    started = datetime.now(UTC)
    try:
        title = f"build {loaded.recipe.name} {loaded.recipe.version}"
        with events.stage("build", title, build=build_id):
            if request.requester:
                events.info(f"requested by {request.requester}", data={"requester": request.requester})
            for warning in warnings:  # AWSTOE documents Kiln accepts but AWSTOE would question, ...
                events.warning(str(warning))
            product = produce(inputs, store, request.options, events, build_id)
            try:
                if request.options.check_reproducible:
                    check_reproducible(inputs, store, request.options, product, events)
                share(product, settings, store, events)  # blobs in the shared store before the record
                image = record(catalog, product, events, attempt)
            except BaseException:
                shutil.rmtree(store.output_dir(product.name, product.version, build_id), ignore_errors=True)
                raise
    except BaseException as exc:
        secrets.masker.scrub(exc)  # the message is recorded and shown: no secret value in it
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else (str(exc) or type(exc).__name__)
        try:
            catalog.fail_build(
                build_id,
                secrets.masker.mask(message),
                cancelled=isinstance(exc, KeyboardInterrupt),
                attempt=attempt,
            )
        except Exception as unrecorded:  # the catalog's own disk may be the full one
            events.warning(f"could not record the build as failed ({unrecorded}); the next command will")
        raise
    finally:
        log.close()
        catalog.close()
    return BuildResult(build_id, product, image, log_path, (datetime.now(UTC) - started).total_seconds())


def version_warnings(loaded: LoadedRecipe, catalog: Catalog) -> list[Issue]:
    """A version should mean one recipe: building ``name@version`` again from a recipe whose content
    differs from the earlier builds of that version is worth a warning (an error with --strict)."""
    recipe = loaded.recipe
    earlier = [i for i in catalog.list_images(recipe.name) if i.version == recipe.version]
    differing = [i for i in earlier if i.recipe_digest and i.recipe_digest != loaded.digest]
    if not differing:
        return []
    refs = ", ".join(i.ref for i in differing[-3:])
    message = (
        f"{recipe.name}@{recipe.version} was built before from a recipe with other content ({refs}); "
        "raise the version when the recipe changes (an error with --strict)"
    )
    return [Issue(display_path(loaded.path), None, None, "version", message)]


def _disk_full(exc: BaseException, ctx: BuildContext | None, store: Store) -> DiskFull | None:
    """A full disk named with its path and the size of the image's root (what the outputs are made of)."""
    if not is_disk_full(exc):
        return None
    needed = sum(tree_size(p) for p in ctx.lowers()) if ctx is not None and ctx.layers else None
    return as_disk_full(exc, ctx.output_dir if ctx and ctx.output_dir else store.home, needed=needed)
