"""``kiln build``: turn a recipe into a recorded image version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json

if TYPE_CHECKING:
    from kiln.build.orchestrate import BuildOutcome
    from kiln.catalog import EvidenceRecord


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{size} B"


def evidence_lines(evidence: list[EvidenceRecord]) -> list[str]:
    """Package count, vulnerabilities by severity, compliance score, signature status."""
    lines = []
    for item in evidence:
        summary = item.summary
        if item.kind == "sbom-spdx":
            lines.append(f"{'sbom':<10} {summary.get('packages', '?')} packages (SPDX 2.3, CycloneDX 1.6)")
        elif item.kind == "vulnerability-report":
            by_severity = summary.get("by_severity") or {}
            counts = ", ".join(f"{v} {k}" for k, v in by_severity.items() if v) or "none found"
            gate = f"; gate {summary['gate']}" if "gate" in summary else ""
            lines.append(f"{'vulns':<10} {counts}{gate}")
        elif item.kind == "compliance-results":
            lines.append(f"{'compliance':<10} score {summary.get('score')}% ({summary.get('profile', '')})")
        elif item.kind.startswith("provenance"):
            lines.append(f"{'provenance':<10} {summary.get('signature', 'unsigned')}")
    return lines


def print_outcome(outcome: BuildOutcome) -> None:
    image = outcome.image
    oci = next((a for a in image.artifacts if a.kind == "oci"), None)
    console.print(f"[bold green]built[/] {image.name} {image.version}/{image.build}")
    console.print(f"  digest     {image.digest}")
    console.print(f"  size       {human_size(image.size)} (compressed layers)")
    for artifact in image.artifacts:
        console.print(f"  {artifact.kind:<10} {artifact.path}")
    if oci is None:
        console.print("  (no OCI layout requested)")
    for line in evidence_lines(image.evidence):
        console.print(f"  {line}")
    console.print(f"  build      {outcome.build_id} (log: {outcome.log_path})")
    console.print(
        f"  took       {outcome.duration:.1f}s; {outcome.ran_steps} step(s) ran, "
        f"{outcome.cached_layers} layer(s) from cache"
    )
    if outcome.kept_rootfs:
        console.print(f"  rootfs     {outcome.kept_rootfs}")


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_command(
        recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
        data_dir: DataDirOption = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
        keep_rootfs: Annotated[
            bool, typer.Option("--keep-rootfs", help="Keep a copy of the root (also on failure).")
        ] = False,
        refresh_parent: Annotated[
            bool, typer.Option("--refresh-parent", help="Bootstrap the parent again from the archive.")
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
            typer.Option(
                "--locked", help="Lock file of an earlier build: reproduce exactly its package set."
            ),
        ] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show step output.")] = False,
        json_output: JsonOption = False,
    ) -> None:
        """Build RECIPE: parent, components, outputs; record the image version in the catalog."""
        from kiln.build.context import BuildOptions
        from kiln.build.orchestrate import build
        from kiln.monitor import ConsoleMonitor, Monitor
        from kiln.recipes.loader import load_recipe
        from kiln.sandbox.namespace import contain_process_tree

        contain_process_tree()
        from kiln.lock import read_lockfile

        loaded = load_recipe(recipe)
        lock = read_lockfile(locked) if locked is not None else None
        store = open_store(data_dir)
        monitor: Monitor = ConsoleMonitor(verbose=verbose)
        for warning in loaded.warnings:
            monitor.warning(str(warning))
        options = BuildOptions(
            no_cache=no_cache,
            keep_rootfs=keep_rootfs,
            refresh_parent=refresh_parent,
            check_reproducible=check_reproducible,
            locked=lock,
        )
        outcome = build(recipe, store, monitor, options, loaded=loaded)
        if json_output:
            print_json(
                {
                    "build_id": outcome.build_id,
                    "duration": outcome.duration,
                    "ran_steps": outcome.ran_steps,
                    "cached_layers": outcome.cached_layers,
                    "log_path": str(outcome.log_path),
                    "image": outcome.image.model_dump(mode="json"),
                }
            )
        else:
            print_outcome(outcome)
