"""``kiln distribute REF``: publish a recorded image to its recipe's distribution targets;
``kiln distributions REF``: every recorded attempt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json, settings

STYLE = {"published": "green", "unchanged": "dim", "failed": "red", "skipped": "dim", "unpublished": "yellow"}


def register(app: typer.Typer) -> None:
    @app.command("distribute")
    def distribute_command(
        ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@VERSION/BUILD")],
        target: Annotated[
            list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
        ] = None,
        retry_failed: Annotated[
            bool, typer.Option("--retry-failed", help="Only targets whose last attempt failed.")
        ] = False,
        unpublish: Annotated[
            bool, typer.Option("--unpublish", help="Remove the image from its targets instead.")
        ] = False,
        config: Annotated[
            Path | None,
            typer.Option("--config", help="Targets from this file's `distribution:` (default: the recipe)."),
        ] = None,
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Publish a recorded image (no rebuild): preflight every target, then publish and record each.

        Re-running after success changes nothing and says so; --retry-failed publishes only what failed.
        """
        from kiln.catalog import Catalog
        from kiln.distribute import run
        from kiln.distribute.config import load_distribution

        with Catalog.open(open_store(data_dir).database_url) as catalog:
            image = catalog.get_image(ref)
            recipe = Path(catalog.get_build(image.build_id).recipe_path)
            loaded = load_distribution(config or recipe, recipe)
            requester = os.environ.get("USER") or None
            if unpublish:
                outcomes = run.unpublish(catalog, image.ref, loaded, settings=settings(), environ=os.environ,
                                         only=target, requester=requester)  # fmt: skip
            else:
                outcomes = run.distribute(
                    catalog, image.ref, loaded, settings=settings(), environ=os.environ, only=target,
                    retry_failed=retry_failed, requester=requester,
                    log=lambda m: err_console.print(f"[dim]{escape(m)}[/]"),
                )  # fmt: skip
        if json_output:
            print_json({"image": image.ref, "targets": [o.__dict__ for o in outcomes]})
        else:
            for o in outcomes:
                style = STYLE[o.result]
                note = "already published, nothing changed" if o.result == "unchanged" else (o.error or "")
                console.print(f"[{style}]{o.result:<11}[/] {escape(o.target)} ({o.kind}) {escape(note)}")
        if any(o.result == "failed" for o in outcomes):
            raise typer.Exit(1)

    @app.command("preflight")
    def preflight_command(
        recipe: Annotated[Path, typer.Argument(help="The recipe (its `distribution:` targets).")],
        target: Annotated[
            list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="Targets from this file's `distribution:` instead.")
        ] = None,
    ) -> None:
        """Check the distribution targets before a build starts: credentials resolve, endpoints answer,
        buckets, repositories and roles exist. Exit 1 naming every problem (a pipeline stops here)."""
        from kiln.distribute import run
        from kiln.distribute.config import load_distribution
        from kiln.yamlsrc import parse_yaml

        data = parse_yaml(recipe).data
        name = str(data.get("name", "image")) if isinstance(data, dict) else "image"
        version = str(data.get("version", "0.0.0")) if isinstance(data, dict) else "0.0.0"
        loaded = load_distribution(config or recipe, recipe)
        checked = run.preflight_planned(loaded, name=name, version=version, settings=settings(),
                                        environ=os.environ, only=target)  # fmt: skip
        console.print(f"preflight passed: {', '.join(checked)}")

    @app.command("distributions")
    def distributions_command(
        ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@VERSION/BUILD")],
        data_dir: DataDirOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Every distribution attempt of an image: target, status, external ids, timings, errors."""
        from kiln.catalog import Catalog
        from kiln.catalog import distributions as jobs

        with Catalog.open(open_store(data_dir).database_url) as catalog:
            records = jobs.history(catalog, ref)
        if json_output:
            print_json([r.model_dump(mode="json") for r in records])
            return
        for r in records:
            when = r.started.strftime("%Y-%m-%d %H:%M:%S")
            console.print(f"{when} {escape(r.target)} ({r.kind}) {r.status} {escape(r.error or '')}")
