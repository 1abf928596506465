"""Stage: test phases on a fresh instance made from the output, never the build root.

As in EC2 Image Builder, a failing test fails the build and nothing is recorded (the instances
themselves are in :mod:`kiln.verify.phases`).
A pass is cached by (image digest, test documents, parameters), so a no-op rebuild re-runs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from kiln.build.components import sandbox_options
from kiln.build.context import BuildContext
from kiln.build.keys import digest_of, execution_settings
from kiln.cachestore import KeyedCache
from kiln.outputs.layout import open_layout
from kiln.recipes.loader import ResolvedComponent
from kiln.verify.phases import TestDocument, test_on_container, test_on_vm


def run_tests(ctx: BuildContext) -> None:
    """Run every test phase on each kind of fresh instance the recipe asks for."""
    tests = ctx.loaded.test_components
    if not tests:
        return
    passed = KeyedCache(ctx.store.cache / "tested")
    for kind in ctx.loaded.recipe.test_instance_kinds():
        key = digest_of(
            {
                "stage": f"test-{kind}",
                "image": ctx.manifest_digest,
                "disks": [a.digest for a in ctx.artifacts if a.kind != "oci"] if kind == "vm" else [],
                "tests": [(t.document.digest, t.parameters) for t in tests],
                "settings": execution_settings(ctx.loaded.recipe.settings),
            }
        )
        if passed.get(key) is not None and not ctx.options.no_cache:
            ctx.monitor.info(
                f"test on {kind}: cached (this image passed these tests before)", status="cached"
            )
            ctx.tested_on.append(kind)
            continue
        if kind == "vm":
            run_vm(ctx, tests)
        else:
            run_container(ctx, tests)
        ctx.tested_on.append(kind)
        passed.commit(key, {"key": key, "build": ctx.build_id, "image": ctx.manifest_digest})


def _documents(tests: list[ResolvedComponent]) -> list[TestDocument]:
    return [TestDocument(t.label, t.document, t.parameters) for t in tests]


def run_vm(ctx: BuildContext, tests: list[ResolvedComponent]) -> None:
    disk, options = ctx.disks[0]
    boot: Literal["uefi", "bios"] = "bios" if options.boot == "bios" else "uefi"
    ctx.ran_steps += test_on_vm(
        disk,
        _documents(tests),
        boot=boot,
        timeout=ctx.loaded.recipe.settings.test_timeout,
        scratch=ctx.scratch,
        monitor=ctx.monitor,
        prefix=f"recipe {ctx.recipe_name}: ",
        accel=ctx.settings.accel,
    )


def output_layer_trees(ctx: BuildContext, layout: Path) -> list[Path] | None:
    """The cached trees the output's layers were written from, if the layout's layer digests are
    exactly those of the trees' blobs (then an overlay of them *is* a fresh instance of the output)."""
    manifest = open_layout(layout).layers
    blobs = [layer.blob.result().digest for layer in ctx.layers]
    if [d.digest for d in manifest] != blobs:
        return None
    return [layer.tree for layer in ctx.layers if layer.stacked]


def run_container(ctx: BuildContext, tests: list[ResolvedComponent]) -> None:
    oci = next(a for a in ctx.artifacts if a.kind == "oci")
    trees = output_layer_trees(ctx, oci.file)
    ctx.ran_steps += test_on_container(
        oci.file,
        _documents(tests),
        options=sandbox_options(ctx),
        workdir=ctx.loaded.recipe.settings.working_directory,
        scratch=ctx.scratch / "instances",
        monitor=ctx.monitor,
        prefix=f"recipe {ctx.recipe_name}: ",
        layer_trees=trees,
    )
