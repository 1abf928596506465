"""Stages: the image's outputs. The OCI layout first (its digest names the image), archives made from
it, then what is made from the merged root: a root tar and bootable disks (raw, qcow2, vmdk, vhdx, vhd)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kiln import __version__
from kiln.build.context import BuildContext
from kiln.build.imageparent import inherit_config
from kiln.layers.tar import LayerBlob, write_layer
from kiln.models import Artifact
from kiln.outputs.convert import convert_disk
from kiln.outputs.disk import DiskOptions, build_disk
from kiln.outputs.docker_archive import write_docker_archive
from kiln.outputs.oci import History, ImageConfig, write_oci_layout
from kiln.outputs.oci_archive import write_oci_archive
from kiln.recipes.model import ArchiveOutput, DiskOutput, OciOutput

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def oci_annotations(ctx: BuildContext, created: datetime) -> dict[str, str]:
    recipe = ctx.loaded.recipe
    values = {
        "org.opencontainers.image.title": recipe.name,
        "org.opencontainers.image.version": recipe.version,
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.base.name": recipe.parent.image,
        "org.opencontainers.image.base.digest": ctx.image_parent.digest if ctx.image_parent else "",
        "org.opencontainers.image.description": recipe.description,
        "dev.kiln.recipe.digest": ctx.loaded.digest,
        "dev.kiln.builder": f"kiln {__version__}",
    }
    values.update({k: v for k, v in recipe.labels.items() if k.startswith("org.opencontainers.image.")})
    return {k: v for k, v in values.items() if v}


def image_config(ctx: BuildContext, created: datetime) -> ImageConfig:
    spec = ctx.loaded.recipe.config
    if ctx.parent_config is not None:  # an image parent: its config is where the child's starts
        fields = inherit_config(ctx.parent_config, spec)
        env = {"PATH": DEFAULT_PATH, **fields.pop("env")}
        if fields["cmd"] is None and not fields["entrypoint"]:
            fields["cmd"] = ["/bin/bash"]
        labels = {**fields.pop("labels"), **ctx.loaded.recipe.labels}
        return ImageConfig(
            architecture=ctx.loaded.recipe.parent.architecture,
            os="linux",
            created=created,
            env=[f"{k}={v}" for k, v in env.items()],
            labels=labels,
            **fields,
        )
    env = {"PATH": DEFAULT_PATH, **spec.env}
    return ImageConfig(
        architecture=ctx.loaded.recipe.parent.architecture,
        os="linux",
        created=created,
        env=[f"{k}={v}" for k, v in env.items()],
        entrypoint=spec.entrypoint,
        cmd=spec.cmd if spec.cmd is not None else (None if spec.entrypoint else ["/bin/bash"]),
        user=spec.user,
        working_dir=spec.workdir,
        exposed_ports=spec.exposed_ports,
        labels=dict(ctx.loaded.recipe.labels),
        stop_signal=spec.stop_signal,
    )


def record(ctx: BuildContext, kind: str, path: Path, digest: str, size: int) -> None:
    ctx.artifacts.append(Artifact(kind=kind, path=str(path), digest=digest, size=size))


def write_oci(ctx: BuildContext) -> None:
    """The OCI image layout: every image has one (its manifest digest is the image digest)."""
    recipe = ctx.loaded.recipe
    created = datetime.fromtimestamp(ctx.epoch, UTC)
    with ctx.monitor.stage("outputs", "wait for layers") as result:
        blobs: list[LayerBlob] = [layer.blob.result() for layer in ctx.layers]
        result["layers"] = len(blobs)
    history = [History(created_by=layer.created_by, comment=layer.label) for layer in ctx.layers]
    ctx.output_dir = ctx.store.output_dir(recipe.name, recipe.version, ctx.build_id)
    oci = next((o for o in recipe.outputs if isinstance(o, OciOutput)), OciOutput())
    ctx.tag = oci.tag or recipe.version
    with ctx.monitor.stage("outputs", "OCI image layout") as result:
        dest = ctx.output_dir / "oci"
        image = write_oci_layout(
            dest,
            blobs,
            image_config(ctx, created),
            history=history,
            annotations=oci_annotations(ctx, created),
            tag=ctx.tag,
        )
        result["digest"] = image.manifest_digest
    ctx.manifest_digest = image.manifest_digest
    ctx.size = image.size
    record(ctx, "oci", dest, image.manifest_digest, image.size)
    write_archives(ctx, dest)


def write_archives(ctx: BuildContext, layout: Path) -> None:
    recipe = ctx.loaded.recipe
    assert ctx.output_dir is not None
    base = f"{recipe.name}-{recipe.version}"
    for output in recipe.outputs:
        if not isinstance(output, ArchiveOutput) or output.type == "rootfs-tar":
            continue
        with ctx.monitor.stage("outputs", output.type):
            if output.type == "oci-archive":
                archive = write_oci_archive(layout, ctx.output_dir / f"{base}.oci.tar", epoch=ctx.epoch)
            else:
                archive = write_docker_archive(
                    layout,
                    ctx.output_dir / f"{base}.docker.tar",
                    repo_tags=[f"{recipe.name}:{ctx.tag}"],
                    epoch=ctx.epoch,
                )
        record(ctx, output.type, archive.path, archive.digest, archive.size)


def write_root_outputs(ctx: BuildContext, root: Path) -> None:
    """Outputs made from the merged root filesystem: root tar and bootable disks."""
    recipe = ctx.loaded.recipe
    assert ctx.output_dir is not None and ctx.manifest_digest is not None
    base = f"{recipe.name}-{recipe.version}"
    if any(isinstance(o, ArchiveOutput) and o.type == "rootfs-tar" for o in recipe.outputs):
        with ctx.monitor.stage("outputs", "rootfs-tar"):
            blob = write_layer(root, ctx.output_dir / f"{base}.rootfs.tar.gz", epoch=ctx.epoch, kind="rootfs")
        record(ctx, "rootfs-tar", blob.path, blob.digest, blob.size)
    disks = [o for o in recipe.outputs if isinstance(o, DiskOutput)]
    groups: dict[DiskOptions, list[DiskOutput]] = {}
    for disk in disks:
        groups.setdefault(disk.options(), []).append(disk)
    for number, (options, outputs) in enumerate(groups.items()):
        suffix = f"-{number}" if len(groups) > 1 else ""
        raw = ctx.output_dir / f"{base}{suffix}.raw"
        image = build_disk(root, raw, options, epoch=ctx.epoch, seed=ctx.manifest_digest, monitor=ctx.monitor)
        for output in outputs:
            if output.type == "raw":
                made = image
            else:
                title = f"convert to {output.type}"
                with ctx.monitor.stage("outputs", title):
                    made = convert_disk(raw, output.type, raw.with_suffix(f".{output.type}"),
                                        on_progress=ctx.monitor.progress("output", title))  # fmt: skip
            record(ctx, output.type, made.path, made.digest, made.real_size)
            ctx.disks.append((made.path, options))
        if not any(o.type == "raw" for o in outputs):
            raw.unlink()
