"""Stages: each component's build phase in its own overlay layer, then every validate phase.

Build phases run in recipe order, each on top of the layers before it, and leave their changes in
an overlay upper directory that becomes the component's layer (cached by key). Validate phases then
run, in recipe order, on the finished filesystem in a throwaway overlay: they check, they don't build.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kiln.build import layercache
from kiln.build.context import BuildContext, Layer
from kiln.build.keys import component_layer_key, digest_of, validate_key
from kiln.cachestore import KeyedCache
from kiln.errors import StepFailed, display_path
from kiln.lock import sandbox_lock
from kiln.recipes.loader import ResolvedComponent
from kiln.rootfs.slim import SlimOptions, slim
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.cachebind import archive_keyrings, cache_views
from kiln.sandbox.overlay import overlay
from kiln.sandbox.run import run
from kiln.sandbox.tmpfs import nearly_full
from kiln.toe.results import FAILED, DocumentResult
from kiln.toe.runner import RootfsTarget, RunOptions, run_document, services


def sandbox_options(ctx: BuildContext, root: Path | None = None,
                    apt_binds: Sequence[Bind] | None = None) -> SandboxOptions:  # fmt: skip
    """How steps run; with ``--locked`` (and the root they run in), apt also sees the locked packages.
    ``apt_binds``: the phase's copy-on-write views of apt's shared caches (default: the caches)."""
    settings = ctx.loaded.recipe.settings
    binds = list(ctx.apt_binds if apt_binds is None else apt_binds)
    env = {"SOURCE_DATE_EPOCH": str(ctx.epoch), **settings.environment}
    if ctx.lock_repo is not None and root is not None:
        extra = sandbox_lock(ctx.lock_repo, root)
        binds += extra.binds
        env |= extra.env
    return SandboxOptions(
        network=settings.network, env=env, binds=tuple(binds), cwd=settings.working_directory,
        secrets_dir=ctx.secrets_dir,
    )  # fmt: skip


def keep_root(ctx: BuildContext, merged: Path) -> None:
    """Copy the merged root for debugging (``--keep-rootfs``)."""
    if not ctx.options.keep_rootfs or ctx.kept_rootfs is not None:
        return
    dest = ctx.store.home / "kept" / ctx.build_id
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    run(["cp", "-a", "--reflink=auto", f"{merged}/.", str(dest)])
    ctx.kept_rootfs = dest
    ctx.monitor.info(f"root filesystem kept at {dest}", data={"kept_rootfs": str(dest)})


def _check(ctx: BuildContext, component: ResolvedComponent, phase: str, result: DocumentResult,
           merged: Path) -> None:  # fmt: skip
    ctx.ran_steps += result.counts()["executedStepCount"]
    if not result.ok:
        keep_root(ctx, merged)
        detail = result.failure_message or f"{phase} phase failed"
        hint = f"see the build log: kiln builds show {ctx.build_id} --log"
        if ctx.kept_rootfs is not None:
            hint = f"the root is kept at {ctx.kept_rootfs} (kiln toe run --target rootfs:PATH); {hint}"
        raise StepFailed(f"recipe {ctx.recipe_name}: {failed_step(ctx, component, phase, result)}\n{detail}",
                         hint=hint)  # fmt: skip


def failed_step(ctx: BuildContext, component: ResolvedComponent, phase: str, result: DocumentResult) -> str:
    """Where a phase failed: the component and its position in the recipe, the phase, the step and its
    file:line in the component document, the exit code."""
    total = len(ctx.loaded.components)
    where = f"component {component.label} ({component.index + 1} of {total} in the recipe): phase {phase}"
    step = next((s for s in reversed(result.steps()) if s.status == FAILED), None)
    if step is None:
        return where
    declared = component.document.phase(phase)
    line = next((s.line for s in (declared.steps if declared else []) if s.name == step.name), None)
    location = display_path(component.document.path) + (f":{line}" if line is not None else "")
    code = f", exit code {step.exit_code}" if step.exit_code is not None else ""
    return f"{where}: step {step.name} ({step.action} at {location}){code}"


# Files package tools write with the time of day in them (mmdebstrap drops the same set when
# SOURCE_DATE_EPOCH is set). Dropped from a layer so the same inputs give the same layer.
UNREPRODUCIBLE_FILES = (
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    "var/cache/ldconfig/aux-cache",
)


def drop_unreproducible(upper: Path) -> None:
    """Remove time-stamped logs and caches, and whatever steps left in ``/tmp``, from an overlay upper
    dir (steps share the image's ``/tmp`` as on an instance; the image ships it empty)."""
    for rel in UNREPRODUCIBLE_FILES:
        path = upper / rel
        if path.is_file() and not path.is_symlink():
            path.unlink()
    tmp = upper / "tmp"
    if tmp.is_dir() and not tmp.is_symlink():
        for entry in tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def slim_layer(ctx: BuildContext, upper: Path) -> None:
    """With ``slim``, drop what the component added that the slim rules remove (from its layer only)."""
    spec = ctx.loaded.recipe.slim
    if spec is None:
        return
    report = slim(upper, SlimOptions(keep_locales=tuple(spec.keep_locales), dpkg_config=False))
    if report.saved:
        ctx.monitor.info(f"slim: layer {report.size_before / 1e6:.1f} MB -> {report.size_after / 1e6:.1f} MB")


def _ensure_workdir(ctx: BuildContext, merged: Path) -> None:
    workdir = merged / ctx.loaded.recipe.settings.working_directory.lstrip("/")
    if not workdir.is_dir():
        workdir.mkdir(parents=True)


@contextmanager
def apt_views(ctx: BuildContext, work: Path) -> Iterator[tuple[Bind, ...]]:
    """apt's shared caches as private copy-on-write views for one phase (verified files flow back)."""
    keyrings = archive_keyrings(ctx.parent.rootfs) if ctx.parent is not None else []
    with cache_views(ctx.apt_binds, work / "apt-view", keyrings) as views:
        yield views


def _run_phase(ctx: BuildContext, component: ResolvedComponent, phase: str, merged: Path,
               apt_binds: Sequence[Bind], chain: dict[str, Any] | None = None) -> DocumentResult:  # fmt: skip
    # Secret parameters get their values here only; everything else sees the secret's name.
    parameters = {**component.parameters, **ctx.secrets.parameter_values(component.secret_parameters)}
    result = run_document(
        component.document,
        phases=[phase],
        parameters=parameters,
        target=RootfsTarget(merged, sandbox_options(ctx, merged, apt_binds), ctx.secrets.env_names),
        monitor=ctx.monitor,
        label=component.label,
        chain=chain,
        options=RunOptions(services=services(ctx.settings)),
    )
    if ctx.secrets:  # step inputs/outputs go to the layer's metadata and the error message
        result.chain = ctx.secrets.masker.mask_data(result.chain)
        result.failure_message = ctx.secrets.masker.mask(result.failure_message or "") or None
    return result


def _build_phase(
    ctx: BuildContext, component: ResolvedComponent, work: Path
) -> tuple[DocumentResult, Path] | None:
    """Run the build phase in an overlay whose upper dir is under ``work``; (result, upper dir).

    None when it failed because the memory scratch space filled up (the caller retries on disk).
    """
    upper = work / "upper"
    # apt's shared lists and .deb cache allow one apt at a time: builds sharing a cache take turns.
    with (
        ctx.store.apt_lock(),
        overlay(ctx.lowers(), upper, work) as merged,
        apt_views(ctx, work) as apt_binds,
    ):
        _ensure_workdir(ctx, merged)
        result = _run_phase(ctx, component, "build", merged, apt_binds)
        if not result.ok and ctx.ram is not None and work.is_relative_to(ctx.ram) and nearly_full(ctx.ram):
            return None
        _check(ctx, component, "build", result, merged)
    return result, upper


def build_component(ctx: BuildContext, component: ResolvedComponent) -> None:
    settings = ctx.loaded.recipe.settings
    label = component.label
    if "build" not in component.document.phase_names:
        return
    chain = key = component_layer_key(
        ctx.layers[-1].link, component, settings, ctx.epoch, ctx.secret_identity
    )
    if component.ref.archive_independent and ctx.neutral_key is not None:
        # Its layer does not depend on the parent's package versions: found again on a refreshed
        # parent (same epoch), while the chain on to later components keeps the parent's version.
        ctx.neutral_key = key = component_layer_key(
            ctx.neutral_key, component, settings, ctx.epoch, ctx.secret_identity
        )
    else:
        ctx.neutral_key = None
    if ctx.options.locked is not None:  # locked packages: never mix with layers built from the archive
        key = digest_of([key, ctx.options.locked.digest])
        chain = digest_of([chain, ctx.options.locked.digest])
    # Leased for the whole build; a build making this layer now is waited for, and its layer reused.
    claim = layercache.claim(
        ctx.store,
        key,
        reuse=not ctx.options.no_cache,
        on_wait=lambda: ctx.monitor.info(f"component {label}: waiting for another build making this layer"),
    )
    ctx.holds.callback(claim.release)
    created_by = f"kiln component {label} ({component.document.digest})"
    if claim.hit is not None:
        blob, meta = claim.hit
        ctx.monitor.info(f"component {label}: cached", component=label, status="cached")
        tree = ctx.store.layer_dir(key) / "upper"
        ctx.layers.append(
            Layer(
                key,
                tree,
                label,
                created_by,
                True,
                layercache.done(blob),
                meta.get("chain", {}),
                component.index,
                chain_key=chain,
            )
        )
        return
    with ctx.monitor.stage("component", f"component {label}", component=label):
        outcome = _build_phase(ctx, component, ctx.work_dir(f"component-{component.index}"))
        if outcome is None:
            ctx.monitor.warning(
                f"component {label} outgrew the memory scratch space: running it again on disk"
            )
            shutil.rmtree(ctx.work_dir(f"component-{component.index}"))
            outcome = _build_phase(ctx, component, ctx.scratch / f"component-{component.index}")
            assert outcome is not None
        result, upper = outcome
        drop_unreproducible(upper)
        slim_layer(ctx, upper)
        if claim.create is not None:
            entry = ctx.store.layer_dir(key)
            tree = layercache.adopt_tree(entry, upper)
        else:  # --no-cache while other builds may use the cached entry: this layer stays private
            entry, tree = ctx.scratch / "layers" / key, upper
        meta = {
            "key": key,
            "kind": "component",
            "component": label,
            "document": component.document.digest,
            "parameters": component.parameters,
            "chain": result.chain,
        }
        level = settings.compression_level
        blob_future = layercache.schedule(
            ctx.executor, entry, tree, "upper", ctx.epoch, level, meta, claim.create,
            ctx.monitor.progress("layer", f"layer {label}"),
        )  # fmt: skip
        ctx.layers.append(
            Layer(
                key,
                tree,
                label,
                created_by,
                False,
                blob_future,
                result.chain,
                component.index,
                chain_key=chain,
            )
        )


def validate_components(ctx: BuildContext) -> None:
    components = [c for c in ctx.loaded.components if "validate" in c.document.phase_names]
    if not components:
        return
    key = validate_key(
        ctx.layers[-1].link, ctx.loaded.components, ctx.loaded.recipe.settings, ctx.secret_identity
    )
    passed = KeyedCache(ctx.store.cache / "validated")
    if passed.get(key) is not None and not ctx.options.no_cache:
        ctx.monitor.info(
            "validate: cached (these layers passed these validate phases before)", status="cached"
        )
        return
    chains = {layer.component_index: layer.chain for layer in ctx.layers}
    with ctx.monitor.stage("validate", "validate"):
        work = ctx.work_dir("validate")
        with (
            ctx.store.apt_lock(),
            overlay(ctx.lowers(), work / "upper", work) as merged,
            apt_views(ctx, work) as apt_binds,
        ):
            _ensure_workdir(ctx, merged)
            for component in components:
                result = _run_phase(
                    ctx, component, "validate", merged, apt_binds, chains.get(component.index)
                )
                _check(ctx, component, "validate", result, merged)
    passed.commit(key, {"key": key, "build": ctx.build_id})
