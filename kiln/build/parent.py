"""Stage: the parent root (mmdebstrap, cached) and its layer; an image parent is kiln.build.imageparent."""

from __future__ import annotations

from kiln.build import layercache
from kiln.build.context import BuildContext, Layer
from kiln.build.freshness import parent_notice
from kiln.build.imageparent import apt_binds, prepare_image_parent
from kiln.build.keys import parent_layer_key
from kiln.errors import BuildFailed
from kiln.lock import (
    LockedPackage,
    LockFile,
    lock_mismatches,
    mmdebstrap_lock_args,
    prepare_locked_repo,
    verify_locked,
)
from kiln.recipes.model import PARENT, ParentSpec, SlimSpec
from kiln.rootfs.debian import DEFAULT_MIRRORS, DebianParent, ParentRoot, ensure_parent
from kiln.rootfs.parentcache import current_meta


def debian_parent(spec: ParentSpec, slim: SlimSpec | None = None) -> DebianParent:
    match = PARENT.match(spec.image)
    assert match is not None  # validated by the recipe model
    distribution, suite = match["distribution"], match["suite"]
    return DebianParent(
        distribution=distribution,
        suite=suite,
        mirror=spec.mirror or DEFAULT_MIRRORS[distribution],
        variant=spec.variant,
        packages=tuple(spec.packages),
        architecture=spec.architecture,
        areas=tuple(spec.areas),
        security=spec.security,
        slim=tuple(slim.keep_locales) if slim is not None else None,
    )


def source_date_epoch(ctx: BuildContext, parent_epoch: int) -> int:
    """SOURCE_DATE_EPOCH from a lock, the request (SOURCE_DATE_EPOCH), the recipe, else the archive's
    Release date."""
    if ctx.options.locked is not None:
        return int(ctx.options.locked.parent.source_date_epoch)
    if ctx.epoch_override is not None:
        return ctx.epoch_override
    return ctx.loaded.recipe.settings.source_date_epoch or parent_epoch


def locked_parent(ctx: BuildContext, parent: DebianParent, lock: LockFile) -> ParentRoot:
    """The parent with exactly the locked package set: the normal cached root when it matches the lock,
    else a separate root bootstrapped from a local repository of the locked .debs (pinned versions)."""
    components = [(c.label, c.document.digest) for c in ctx.loaded.components]
    problems = lock_mismatches(lock, parent_key=parent.key, components=components)
    if problems and lock.parent.key != parent.key:
        raise BuildFailed("the lock file does not fit this recipe:\n" + "\n".join(problems))
    for problem in problems:
        ctx.monitor.warning(f"lock: {problem}")
    ctx.lock_repo = prepare_locked_repo(lock, ctx.store.deb_cache, ctx.scratch / "lock")
    meta = current_meta(ctx.store.parent_dir(parent.key))
    if meta is not None:
        debs = [LockedPackage(**d) for d in meta.get("debs", [])]
        if not verify_locked(lock, debs, partial=True):
            return ensure_parent(parent, ctx.store, ctx.monitor)
    return ensure_parent(
        parent,
        ctx.store,
        ctx.monitor,
        epoch=lock.parent.source_date_epoch,
        variant_key=lock.digest,
        extra_args=mmdebstrap_lock_args(ctx.lock_repo),
    )


def prepare_parent(ctx: BuildContext) -> None:
    if ctx.image_parent is not None:
        prepare_image_parent(ctx, ctx.image_parent)
        return
    recipe = ctx.loaded.recipe
    parent = debian_parent(recipe.parent, recipe.slim)
    with ctx.monitor.stage("parent", f"parent {recipe.parent.image}") as result:
        if ctx.options.locked is not None:
            root = locked_parent(ctx, parent, ctx.options.locked)
        else:
            # A new parent stays in the build's memory scratch; its copy into the cache overlaps the
            # components (see ensure_parent; orchestrate waits for it before the scratch goes).
            refresh = ctx.options.refresh_parent or ctx.options.refresh
            root = ensure_parent(
                parent, ctx.store, ctx.monitor, refresh=refresh, ram=ctx.ram, use_tmpfs=ctx.settings.tmpfs
            )
            if root.cached and (notice := parent_notice(root, ctx.store)) is not None:
                ctx.monitor.info(notice)
        result["status"] = "cached" if root.cached else "success"
        result["key"] = root.key
    ctx.holds.callback(root.release)  # the root stays leased (nobody removes it) until the build ends
    ctx.parent = root
    ctx.epoch = source_date_epoch(ctx, root.source_date_epoch)
    # apt's lists, its binary caches (pkgcache.bin, ~40 MB) and downloaded .debs live outside the
    # image: shared between builds with the same sources, and never captured in a layer. Steps see
    # them through a private copy-on-write view (kiln.sandbox.cachebind).
    ctx.apt_binds = apt_binds(ctx.store, root.sources)
    level = recipe.settings.compression_level
    # A refreshed parent is a new version of the same entry: its layers get keys of their own.
    parent_id = f"{root.key}/{root.version}" if root.version else root.key
    key = parent_layer_key(parent_id, ctx.epoch, level)
    ctx.neutral_key = parent_layer_key(root.key, ctx.epoch, level)
    claim = layercache.claim(
        ctx.store,
        key,
        reuse=not ctx.options.no_cache,
        on_wait=lambda: ctx.monitor.info("waiting for another build writing the parent's layer"),
    )
    ctx.holds.callback(claim.release)
    if claim.hit is not None:
        blob = layercache.done(claim.hit[0])
    else:
        meta = {"key": key, "kind": "parent", "parent": recipe.parent.image, "parent_key": root.key}
        entry = ctx.store.layer_dir(key) if claim.create is not None else ctx.scratch / "layers" / key
        blob = layercache.schedule(
            ctx.executor, entry, root.rootfs, "rootfs", ctx.epoch, level, meta, claim.create,
            ctx.monitor.progress("layer", f"layer {recipe.parent.image}"),
        )  # fmt: skip
    ctx.layers.append(
        Layer(
            key,
            root.rootfs,
            recipe.parent.image,
            f"kiln parent {recipe.parent.image}",
            claim.hit is not None,
            blob,
        )
    )
