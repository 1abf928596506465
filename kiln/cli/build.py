"""``kiln build``: turn a recipe into a recorded image version."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json, settings
from kiln.cli.exitcodes import epilog
from kiln.errors import KilnError
from kiln.monitor import Event, Monitor
from kiln.units import human_size

if TYPE_CHECKING:
    from kiln.build import BuildResult
    from kiln.models import RecipeSource


def evidence_lines(summary: dict[str, object]) -> list[str]:
    """Package count, vulnerabilities by severity, compliance score, signature (evidence_summary)."""
    lines = []
    if "packages" in summary:
        lines.append(f"{'sbom':<10} {summary['packages']} packages (SPDX 2.3, CycloneDX 1.6)")
    if "vulnerabilities" in summary:
        by_severity = summary["vulnerabilities"] if isinstance(summary["vulnerabilities"], dict) else {}
        counts = ", ".join(f"{v} {k}" for k, v in by_severity.items() if v) or "none found"
        gate = f"; gate {summary['gate']}" if "gate" in summary else ""
        lines.append(f"{'vulns':<10} {counts}{gate}")
    if "compliance_score" in summary:
        profile = summary.get("profile", "")
        view = summary.get("view", "")
        lines.append(f"{'compliance':<10} score {summary['compliance_score']}% ({profile}, {view} view)")
    if "signature" in summary:
        lines.append(f"{'provenance':<10} {summary['signature']}")
    return lines


def print_result(result: BuildResult) -> None:
    from kiln.evidence.collect import evidence_summary

    image = result.image
    console.print(f"[bold green]built[/] {image.name} {image.version}/{image.build}")
    console.print(f"  digest     {image.digest}")
    console.print(f"  size       {human_size(image.size)} (compressed layers)")
    for artifact in image.artifacts:
        console.print(f"  {artifact.kind:<10} {artifact.path}")
    if not any(a.kind == "oci" for a in image.artifacts):
        console.print("  (no OCI layout requested)")
    for line in evidence_lines(evidence_summary(image.evidence)):
        console.print(f"  {line}")
    console.print(f"  build      {result.build_id} (log: {result.log_path})")
    console.print(
        f"  took       {result.duration:.1f}s; {result.ran_steps} step(s) ran, "
        f"{result.cached_layers} layer(s) from cache"
    )
    if result.kept_rootfs:
        console.print(f"  rootfs     {result.kept_rootfs}")


def build_command(
    recipe: Annotated[
        Path,
        typer.Argument(
            help="Recipe YAML file, or kiln:recipes/NAME\\[@VERSION] (published: 1.2.3, 1.x, latest)."
        ),
    ],
    data_dir: DataDirOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    keep_rootfs: Annotated[
        bool, typer.Option("--keep-rootfs", help="Keep a copy of the root (also on failure).")
    ] = False,
    refresh_parent: Annotated[
        bool, typer.Option("--refresh-parent", help="Bootstrap the parent again from the archive.")
    ] = False,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Bootstrap a new parent from the current archive and re-run every component "
            "(except archive-independent ones); the .deb download cache is still used.",
        ),
    ] = False,
    check_reproducible: Annotated[
        bool,
        typer.Option(
            "--check-reproducible",
            help="Build again from the same inputs; fail (recording nothing) if any artifact differs.",
        ),
    ] = False,
    locked: Annotated[
        Path | None,
        typer.Option("--locked", help="Lock file of an earlier build: reproduce exactly its package set."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Warnings are errors: what AWSTOE would question ({{ Undeclared }} names, unused "
            "inputs), a version built before from another recipe.",
        ),
    ] = False,
    no_tests: Annotated[
        bool,
        typer.Option(
            "--no-tests",
            help="Skip the test phases (the log and the provenance say so; promotion rules requiring "
            "tests refuse the image).",
        ),
    ] = False,
    test_timeout: Annotated[
        int | None,
        typer.Option(
            "--test-timeout",
            min=1,
            max=86400,
            metavar="SECONDS",
            help="Fail the build if the test stage takes longer (its processes are killed).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show step output.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Build RECIPE: parent, components, outputs; record the image version in the catalog."""
    from kiln.build import run_build
    from kiln.cli.estimate import recipe_estimate
    from kiln.cli.progress import progress_monitor
    from kiln.lock import read_lockfile
    from kiln.models import BuildOptions, BuildRequest
    from kiln.monitor import FanOut
    from kiln.sandbox.namespace import contain_process_tree

    if (refresh or refresh_parent) and locked is not None:
        raise typer.BadParameter("a lock reproduces an earlier package set: not with a refreshed parent",
                                 param_hint="'--refresh' / '--refresh-parent' with '--locked'")  # fmt: skip
    if no_tests and test_timeout is not None:
        raise typer.BadParameter("no test stage to bound when the tests are skipped",
                                 param_hint="'--test-timeout' with '--no-tests'")  # fmt: skip
    seen = BuildEvents()
    try:
        config = settings()
        home = (data_dir or config.data_dir).expanduser().absolute()
        request = BuildRequest(
            recipe=recipe_source(recipe, home),
            data_dir=home,
            options=BuildOptions(
                no_cache=no_cache,
                keep_rootfs=keep_rootfs,
                refresh_parent=refresh_parent,
                refresh=refresh,
                check_reproducible=check_reproducible,
                locked=read_lockfile(locked) if locked is not None else None,
                strict=strict,
                skip_tests=no_tests,
                test_timeout=test_timeout,
            ),
            source_date_epoch=config.source_date_epoch,
            requester=f"{getpass.getuser()}@{socket.gethostname()}",
        )
        estimate = None if json_output else recipe_estimate(request, config)
        display = progress_monitor(err_console, verbose=verbose, json_output=json_output, estimate=estimate)
        monitor = FanOut([display, seen])
        contain_process_tree(config.private_namespaces)  # nothing the build starts outlives it
        try:
            result = run_build(request, monitor=monitor, settings=config, environ=os.environ)
        finally:
            display.close()  # the live display ends before the result or the error is printed
    except KilnError as exc:
        if seen.kept_rootfs is not None and seen.kept_rootfs not in (exc.hint or ""):
            exc.hint = f"{exc.hint}\n" if exc.hint else ""
            exc.hint += f"the root is kept at {seen.kept_rootfs}"
        if json_output:
            print_json(failure_json(exc, seen))
        raise
    if json_output:
        print_json(
            {
                "status": "succeeded",
                "build_id": result.build_id,
                "duration": result.duration,
                "ran_steps": result.ran_steps,
                "cached_layers": result.cached_layers,
                "log_path": str(result.log_path),
                "image": result.image.model_dump(mode="json"),
            }
        )
    else:
        print_result(result)


PUBLISHED = "kiln:recipes/"


def recipe_source(recipe: Path, data_dir: Path) -> RecipeSource:
    """The recipe file, or the published recipe ``kiln:recipes/NAME[@PATTERN]`` of the catalog."""
    from kiln.catalog import Catalog
    from kiln.models import RecipeSource
    from kiln.registry.recipes import load_published_recipe
    from kiln.registry.semver import split_ref

    if not str(recipe).startswith(PUBLISHED):
        return RecipeSource.read(recipe)
    with Catalog.open(open_store(data_dir).database_url) as catalog:
        return load_published_recipe(catalog, *split_ref(str(recipe).removeprefix(PUBLISHED)))


class BuildEvents(Monitor):
    """What the CLI reports after a failed build: its id and where ``--keep-rootfs`` kept the root."""

    def __init__(self) -> None:
        self.build_id: str | None = None
        self.kept_rootfs: str | None = None

    def emit(self, event: Event) -> None:
        if self.build_id is None and event.build:
            self.build_id = event.build
        if "kept_rootfs" in event.data:
            self.kept_rootfs = str(event.data["kept_rootfs"])


def failure_json(exc: KilnError, seen: BuildEvents) -> dict[str, object]:
    """``build --json`` when the build fails (or never starts: invalid input has no build id)."""
    from kiln.errors import ValidationFailed

    return {
        "status": "failed",
        "build_id": seen.build_id,
        "error": exc.message,
        "hint": exc.hint,
        "exit_code": exc.exit_code,
        "issues": [str(i) for i in exc.issues] if isinstance(exc, ValidationFailed) else [],
        "kept_rootfs": seen.kept_rootfs,
    }


def register(app: typer.Typer) -> None:
    app.command("build", epilog=epilog("build"))(build_command)
