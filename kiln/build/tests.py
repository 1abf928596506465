"""Stage: test phases on a fresh instance made from the output, never the build root.

As in EC2 Image Builder, a failing test fails the build and nothing is recorded (the instances
themselves are in :mod:`kiln.verify.phases`).
A pass is cached by (image digest, test documents, parameters), so a no-op rebuild re-runs nothing.
The request may skip the stage (``BuildOptions.skip_tests``: a pipeline's ``tests.enabled: false``,
``kiln build --no-tests``), which is said in the log and the provenance with who asked, or bound its
time (``BuildOptions.test_timeout``: past it the build fails, :mod:`kiln.verify.deadline`).
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
from kiln.verify.deadline import TestDeadline
from kiln.verify.phases import TestDocument, TestsFailed, test_on_container, test_on_vm

SKIPPED = "test phases skipped"  # the log event (scope test, status skipped) kiln.promotion.rules reads


def skip_tests(ctx: BuildContext) -> None:
    """Record that the request turned the test stage off: nothing is tested (``tested_on`` stays empty)."""
    who = ctx.requester or "the build request"
    kinds = ", ".join(ctx.loaded.recipe.test_instance_kinds()) or "none"
    ctx.tests_skipped = f"tests disabled by {who}"
    ctx.monitor.warning(
        f"{SKIPPED}: {ctx.tests_skipped} ({len(ctx.loaded.test_components)} test component(s), "
        f"instances: {kinds}); the image is recorded untested",
        scope="test",
        status="skipped",
        data={"tests": "skipped", "requester": who},
    )


def run_tests(ctx: BuildContext) -> None:
    """Run every test phase on each kind of fresh instance the recipe asks for."""
    if ctx.options.skip_tests:
        skip_tests(ctx)
        return
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
    bound = ctx.options.test_timeout
    deadline = TestDeadline(bound) if bound is not None else None
    timeout = ctx.loaded.recipe.settings.test_timeout
    try:
        ctx.ran_steps += test_on_vm(
            disk,
            _documents(tests),
            boot=boot,
            timeout=timeout if deadline is None else deadline.clamp(timeout),
            scratch=ctx.scratch,
            monitor=ctx.monitor,
            prefix=f"recipe {ctx.recipe_name}: ",
            accel=ctx.settings.accel,
        )
    except TestsFailed as exc:
        if deadline is not None and deadline.expired:  # the request's bound, not the recipe's, ended it
            raise deadline.failure(f"recipe {ctx.recipe_name}: ", "VM instance", None) from exc
        raise


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
        timeout=ctx.options.test_timeout,
    )
