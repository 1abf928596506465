"""Stage: test phases on a fresh instance made from the output, never the build root.

As in EC2 Image Builder, a failing test fails the build and nothing is recorded. The container
instance is the OCI layout unpacked into a new directory, run in the sandbox, and always deleted; the
VM instance is a qemu boot of a copy-on-write overlay of the disk output, always torn down.
A pass is cached by (image digest, test documents, parameters), so a no-op rebuild re-runs nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

from kiln.build.components import sandbox_options
from kiln.build.context import BuildContext
from kiln.build.keys import digest_of, execution_settings
from kiln.errors import StepFailed
from kiln.recipes.loader import ResolvedComponent
from kiln.toe.runner import RootfsTarget, run_document
from kiln.verify.instance import fresh_instance
from kiln.verify.vm import run_vm_tests


def run_tests(ctx: BuildContext) -> None:
    """Run every test phase on each kind of fresh instance the recipe asks for."""
    tests = ctx.loaded.test_components
    if not tests:
        return
    for kind in ctx.loaded.recipe.test_instance_kinds():
        key = digest_of(
            {
                "stage": f"test-{kind}",
                "image": ctx.manifest_digest,
                "disks": [a["digest"] for a in ctx.artifacts if a["kind"] != "oci"] if kind == "vm" else [],
                "tests": [(t.document.digest, t.parameters) for t in tests],
                "settings": execution_settings(ctx.loaded.recipe.settings),
            }
        )
        marker = ctx.store.cache / "tested" / f"{key}.json"
        if marker.is_file() and not ctx.options.no_cache:
            ctx.monitor.info(
                f"test on {kind}: cached (this image passed these tests before)", status="cached"
            )
            continue
        if kind == "vm":
            run_vm(ctx, tests)
        else:
            run_container(ctx, tests)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"key": key, "build": ctx.build_id, "image": ctx.manifest_digest}))


def test_failed(ctx: BuildContext, label: str, instance: str, message: str | None) -> StepFailed:
    return StepFailed(
        f"recipe {ctx.recipe_name}: component {label}: phase test ({instance}): "
        f"{message or 'test phase failed'}",
        hint="nothing was recorded; fix the image or the test and build again",
    )


def run_vm(ctx: BuildContext, tests: list[ResolvedComponent]) -> None:
    disk, options = ctx.disks[0]
    boot: Literal["uefi", "bios"] = "bios" if options.boot == "bios" else "uefi"
    with ctx.monitor.stage("test", f"test on a fresh VM booted from {disk.name}") as stage:
        result = run_vm_tests(
            disk,
            [(t.label, t.document.path) for t in tests],
            parameters={t.label: t.parameters for t in tests},
            boot=boot,
            timeout=ctx.loaded.recipe.settings.test_timeout,
            monitor=ctx.monitor,
            workdir=ctx.scratch,
        )
        for document in result.documents:
            ctx.ran_steps += document.counts()["executedStepCount"]
        if result.status not in ("success", "success-with-ignored-failure"):
            failed = next((d.name for d in result.documents if not d.ok), tests[0].label)
            raise test_failed(ctx, failed, f"VM instance, {result.accel}", result.failure_message)
        stage["status"] = "passed"
        stage["boot_seconds"] = result.boot_seconds


def run_container(ctx: BuildContext, tests: list[ResolvedComponent]) -> None:
    oci = next(a for a in ctx.artifacts if a["kind"] == "oci")
    # The instance gets its own network namespace (loopback only): services a test starts cannot
    # collide with the host's ports, and tests see the image as a fresh, isolated machine would.
    options = replace(sandbox_options(ctx), network=False)
    with ctx.monitor.stage("test", "test on a fresh container instance") as stage:
        with fresh_instance(Path(oci["path"]), ctx.scratch / "instances") as instance:
            workdir = instance.root / ctx.loaded.recipe.settings.working_directory.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
            for component in tests:
                result = run_document(
                    component.document,
                    phases=["test"],
                    parameters=component.parameters,
                    target=RootfsTarget(instance.root, options),
                    monitor=ctx.monitor,
                    label=component.label,
                )
                ctx.ran_steps += result.counts()["executedStepCount"]
                if not result.ok:
                    raise test_failed(
                        ctx, component.label, "fresh container instance", result.failure_message
                    )
        stage["status"] = "passed"
