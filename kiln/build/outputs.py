"""Stage: write the image's outputs (an OCI image layout now; more formats plug in here)."""

from __future__ import annotations

from datetime import UTC, datetime

from kiln import __version__
from kiln.build.context import BuildContext
from kiln.layers.tar import LayerBlob
from kiln.outputs.oci import History, ImageConfig, write_oci_layout
from kiln.recipes.model import OciOutput


def oci_annotations(ctx: BuildContext, created: datetime) -> dict[str, str]:
    recipe = ctx.loaded.recipe
    values = {
        "org.opencontainers.image.title": recipe.name,
        "org.opencontainers.image.version": recipe.version,
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.base.name": recipe.parent.image,
        "org.opencontainers.image.description": recipe.description,
        "dev.kiln.recipe.digest": ctx.loaded.digest,
        "dev.kiln.builder": f"kiln {__version__}",
    }
    values.update({k: v for k, v in recipe.labels.items() if k.startswith("org.opencontainers.image.")})
    return {k: v for k, v in values.items() if v}


def image_config(ctx: BuildContext, created: datetime) -> ImageConfig:
    spec = ctx.loaded.recipe.config
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **spec.env}
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


def write_outputs(ctx: BuildContext) -> None:
    recipe = ctx.loaded.recipe
    created = datetime.fromtimestamp(ctx.epoch, UTC)
    with ctx.monitor.stage("outputs", "wait for layers") as result:
        blobs: list[LayerBlob] = [layer.blob.result() for layer in ctx.layers]
        result["layers"] = len(blobs)
    history = [History(created_by=layer.created_by, comment=layer.label) for layer in ctx.layers]
    ctx.output_dir = ctx.store.home / "images" / recipe.name / f"{recipe.version}-{ctx.build_id[:12]}"
    for output in recipe.outputs:
        if isinstance(output, OciOutput):
            with ctx.monitor.stage("outputs", "OCI image layout") as result:
                dest = ctx.output_dir / "oci"
                image = write_oci_layout(
                    dest,
                    blobs,
                    image_config(ctx, created),
                    history=history,
                    annotations=oci_annotations(ctx, created),
                    tag=output.tag or recipe.version,
                )
                result["digest"] = image.manifest_digest
            ctx.manifest_digest = image.manifest_digest
            ctx.size = image.size
            ctx.artifacts.append(
                {"kind": "oci", "path": str(dest), "digest": image.manifest_digest, "size": image.size}
            )
