"""Stage: a parent that is an image (a catalogued Kiln image or an OCI image).

The parent's layer blobs become the child's lower layers unchanged (no re-bootstrap, no re-pack: the
child's layout hard-links the same blobs, so a registry already holding them gets nothing new). Steps
run on the parent's root tree (one overlay lower, unpacked once per parent digest). Every layer key
chains from the parent's manifest digest, so a new parent version rebuilds the children's layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.build.context import BuildContext, Layer
from kiln.build.keys import LAYER_FORMAT, digest_of
from kiln.build.layercache import done
from kiln.build.resolved import ResolvedParent
from kiln.errors import BuildFailed
from kiln.layers.tar import LayerBlob
from kiln.outputs.layout import LayoutImage
from kiln.recipes.model import ImageConfigSpec
from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.imageparent import image_root, layer_blobs, open_parent_layout
from kiln.sandbox.bwrap import Bind
from kiln.store import Store


def image_layer_key(parent_digest: str, index: int) -> str:
    return digest_of({"format": LAYER_FORMAT, "image-parent": parent_digest, "layer": index})


def inherited(resolved: ResolvedParent) -> dict[str, Any]:
    """What a Kiln parent's lock says about its own root (apt sources, .debs, epoch)."""
    return dict((resolved.lock or {}).get("parent") or {})


def parent_epoch(ctx: BuildContext, resolved: ResolvedParent, created: int | None) -> int:
    """SOURCE_DATE_EPOCH: a lock, the request, the recipe, else the parent's (so a child of an
    unchanged parent is reproducible)."""
    if ctx.options.locked is not None:
        return int(ctx.options.locked.parent.source_date_epoch)
    if ctx.epoch_override is not None:
        return ctx.epoch_override
    epoch = inherited(resolved).get("source_date_epoch") or created or 0
    return ctx.loaded.recipe.settings.source_date_epoch or int(epoch)


def inherit_config(parent: dict[str, Any], spec: ImageConfigSpec) -> dict[str, Any]:
    """The runtime config a child starts from, as Docker builds one on a base image: the parent's
    env, entrypoint, cmd, user, workdir, ports, labels and stop signal, with what the recipe sets on
    top (a recipe that sets ``entrypoint`` without ``cmd`` drops the parent's cmd). Returns
    :class:`~kiln.outputs.oci.ImageConfig` fields."""
    given = spec.model_fields_set
    env = dict(item.partition("=")[::2] for item in parent.get("Env") or [] if "=" in item)
    env.update(spec.env)
    if "entrypoint" in given:
        entrypoint, cmd = spec.entrypoint, spec.cmd
    else:
        entrypoint = parent.get("Entrypoint")
        cmd = spec.cmd if "cmd" in given else parent.get("Cmd")
    ports = sorted(set(parent.get("ExposedPorts") or {}) | set(spec.exposed_ports))
    return {
        "env": env,
        "entrypoint": entrypoint,
        "cmd": cmd,
        "user": spec.user if "user" in given else parent.get("User") or None,
        "working_dir": spec.workdir if "workdir" in given else parent.get("WorkingDir") or None,
        "exposed_ports": ports,
        "labels": dict(parent.get("Labels") or {}),
        "stop_signal": spec.stop_signal if "stop_signal" in given else parent.get("StopSignal"),
    }


def prepare_image_parent(ctx: BuildContext, resolved: ResolvedParent) -> None:
    arch = ctx.loaded.recipe.parent.architecture
    with ctx.monitor.stage("parent", f"parent {resolved.name} ({resolved.digest[:19]})") as result:
        locked = ctx.options.locked
        if locked is not None and locked.parent.key != resolved.digest:
            raise BuildFailed(f"the lock file was made on parent {locked.parent.key}, "
                              f"the recipe's parent is now {resolved.digest} ({resolved.name})")  # fmt: skip
        image = open_parent_layout(resolved.layout, resolved.tag, arch)
        blobs = layer_blobs(image)
        root = image_root(ctx.store, image, ctx.monitor)
        ctx.holds.callback(root.release)
        result["status"] = "cached" if root.cached else "success"
        result["digest"] = resolved.digest
    ctx.image_parent = resolved
    ctx.parent_config = dict(image.config.get("config") or {})
    for warning in resolved.warnings:
        ctx.monitor.warning(warning)
    facts = inherited(resolved)
    sources = list(facts.get("sources") or [])
    ctx.parent = ParentRoot(
        key=resolved.digest,
        rootfs=root.rootfs,
        source_date_epoch=parent_epoch(ctx, resolved, image.created_epoch),
        cached=root.cached,
        debs=list(facts.get("debs") or []),
        sources=sources,
    )
    ctx.epoch = ctx.parent.source_date_epoch
    # An OCI parent's own apt sources are inside its root: its apt state gets a key of its own.
    ctx.apt_binds = apt_binds(ctx.store, sources or [f"# image {resolved.digest}"])
    ctx.layers += parent_layers(resolved, image, blobs, root.rootfs)


def apt_binds(store: Store, sources: list[str]) -> list[Bind]:
    """apt's lists, binary caches and .debs, shared between builds with the same sources (never
    captured in a layer); steps see them through private copy-on-write views (kiln.sandbox.cachebind)."""
    state = store.apt_state_for(sources)
    return [
        Bind(state / "lists", "/var/lib/apt/lists", cow=True),
        Bind(state / "cache", "/var/cache/apt", cow=True),
        Bind(store.deb_cache, "/var/cache/apt/archives", cow=True),
    ]


def parent_layers(
    resolved: ResolvedParent, image: LayoutImage, blobs: list[LayerBlob], tree: Path
) -> list[Layer]:
    """The parent's layers as the child's first layers: blobs as they are, the bottom one standing
    for the whole parent tree in the overlay (the others are in it already)."""
    history = image.config.get("history") or []
    comments = [h.get("comment", "") for h in history if not h.get("empty_layer")]
    layers = []
    for index, blob in enumerate(blobs):
        label = comments[index] if index < len(comments) and comments[index] else f"layer {index + 1}"
        layers.append(
            Layer(
                image_layer_key(resolved.digest, index),
                tree,
                f"{resolved.name}: {label}",
                f"kiln parent {resolved.name} layer {index + 1} of {len(blobs)}",
                True,
                done(blob),
                stacked=index == 0,
            )
        )
    return layers
