"""Stage: test phases on a fresh instance made from the output, never the build root.

As in EC2 Image Builder, a failing test fails the build and nothing is recorded. The container
instance is the OCI layout unpacked into a new directory, run in the sandbox, and always deleted.
A pass is cached by (image digest, test documents, parameters), so a no-op rebuild re-runs nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kiln.build.components import sandbox_options
from kiln.build.context import BuildContext
from kiln.build.keys import digest_of, execution_settings
from kiln.errors import StepFailed
from kiln.toe.runner import RootfsTarget, run_document
from kiln.verify.instance import fresh_instance


def run_container_tests(ctx: BuildContext) -> None:
    tests = ctx.loaded.test_components
    oci = next((a for a in ctx.artifacts if a["kind"] == "oci"), None)
    if not tests or oci is None:
        return
    key = digest_of(
        {
            "stage": "test",
            "image": ctx.manifest_digest,
            "tests": [(t.document.digest, t.parameters) for t in tests],
            "settings": execution_settings(ctx.loaded.recipe.settings),
        }
    )
    marker = ctx.store.cache / "tested" / f"{key}.json"
    if marker.is_file() and not ctx.options.no_cache:
        ctx.monitor.info("test: cached (this image passed these tests before)", status="cached")
        return
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
                    raise StepFailed(
                        f"recipe {ctx.recipe_name}: component {component.label}: phase test "
                        f"(fresh container instance): {result.failure_message or 'test phase failed'}",
                        hint="nothing was recorded; fix the image or the test and build again",
                    )
        stage["status"] = "passed"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"key": key, "build": ctx.build_id, "image": ctx.manifest_digest}))
