"""``kiln pipelines …``: apply pipeline files, look at them and their runs, queue a run, enable/disable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.catalog import Catalog
from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json, show
from kiln.cli.exitcodes import epilog
from kiln.errors import Issue, UsageError, ValidationFailed
from kiln.pipelines.clock import system_clock
from kiln.pipelines.overview import next_run
from kiln.pipelines.records import RunRecord
from kiln.pipelines.store import PipelineStore

STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "interrupted": "magenta",
    "cancelled": "magenta",
}
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs.")]


@contextmanager
def _store(data_dir: Path | None) -> Iterator[PipelineStore]:
    catalog = Catalog.open(open_store(data_dir).database_url)
    try:
        yield PipelineStore(catalog)
    finally:
        catalog.close()


def _when(value: datetime | None, zone: str = "UTC") -> str:
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def apply(
    target: Annotated[Path, typer.Argument(help="A pipeline file, or a folder of them (*.yaml).")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create or update pipelines from files: all of them or none (invalid files, a cascade cycle)."""
    from kiln.pipelines.load import load_pipelines
    from kiln.pipelines.recipes import PipelineRecipes

    if not target.exists():
        raise ValidationFailed([Issue(str(target), None, None, "", "no such file or folder")])
    with _store(data_dir) as store:
        loaded = load_pipelines(target, PipelineRecipes(store.catalog))
        changes = store.apply(loaded, system_clock())
    if json_out:
        print_json([{"pipeline": name, "change": change} for name, change in changes])
        return
    for name, change in changes:
        console.print(f"{change} {escape(name)}")


def list_pipelines(data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """Applied pipelines with their schedule, state and next run time."""
    now = system_clock()
    with _store(data_dir) as store:
        pipelines = store.pipelines()
        last = {p.name: next(iter(store.runs(p.name, limit=1)), None) for p in pipelines}
    if json_out:
        print_json(
            [
                {
                    **p.model_dump(mode="json"),
                    "next_run": next_run(p, now),
                    "last_run": (r.model_dump(mode="json") if (r := last[p.name]) else None),
                }
                for p in pipelines
            ]
        )
        return
    if not pipelines:
        console.print("no pipelines applied yet; see: kiln pipelines apply FILE")
        return
    table = Table("PIPELINE", "IMAGE", "SCHEDULE", "ENABLED", "NEXT RUN", "LAST RUN", box=None)
    for p in pipelines:
        r = last[p.name]
        table.add_row(
            escape(p.name),
            escape(p.image),
            escape(p.pipeline.schedule or "-"),
            "yes" if p.enabled else "no",
            _when(next_run(p, now), p.pipeline.timezone),
            f"{r.status} {_when(r.created)}" if r else "-",
        )
    show(table)


def _runs_table(runs: list[RunRecord]) -> Table:
    table = Table("RUN", "STATUS", "TRIGGER", "CAUSE", "BUILD", "CREATED", "REASON", box=None)
    for r in runs:
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.id[:12],
            f"[{style}]{r.status}[/]",
            r.trigger.type,
            escape(r.trigger.cause),
            (r.build_id or "-")[:12],
            _when(r.created),
            escape(r.reason or ""),
        )
    return table


def show_pipeline(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    limit: LimitOption = 10,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """A pipeline: next run (in its time zone), last runs, why the last scheduled run was skipped."""
    now = system_clock()
    with _store(data_dir) as store:
        p = store.get(name)
        runs = store.runs(name, limit=limit)
        scheduled = [r for r in store.runs(name) if r.trigger.type == "schedule"]
    last_skip = scheduled[0] if scheduled and scheduled[0].status == "skipped" else None
    if json_out:
        print_json(
            {
                **p.model_dump(mode="json"),
                "next_run": next_run(p, now),
                "runs": [r.model_dump(mode="json") for r in runs],
                "last_scheduled_skip": last_skip.model_dump(mode="json") if last_skip else None,
            }
        )
        return
    zone = p.pipeline.timezone
    console.print(f"[bold]{escape(p.name)}[/] builds {escape(p.image)} from {escape(str(p.recipe_path))}")
    console.print(f"schedule: {escape(p.pipeline.schedule or '-')} ({zone}), when: {p.pipeline.when}")
    console.print(
        f"triggers: {', '.join(p.pipeline.triggers) or '-'}; parents: {', '.join(p.parents) or '-'}; "
        f"component ranges: {escape(', '.join(p.components) or '-')}"
    )
    console.print("enabled: " + ("yes" if p.enabled else f"no ({escape(p.disabled_reason or 'by a user')})"))
    spec = p.pipeline.tests
    console.print(
        f"tests: run, within {spec.timeout_minutes} min"
        if spec.enabled
        else "tests: skipped (enabled: false)"
    )
    console.print(f"next run: {_when(next_run(p, now), zone)}")
    if last_skip:
        console.print(f"last scheduled run skipped: {escape(last_skip.reason or '')}")
    if runs:
        show(_runs_table(runs))


def run_pipeline(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE component parameter override.")
    ] = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Queue a manual run (the daemon builds it: `kiln daemon`, or `kiln daemon --once`)."""
    from kiln.pipelines.manual import queue_manual_run

    overrides: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        overrides[key] = value
    with _store(data_dir) as store:
        run = queue_manual_run(store, name, overrides, by="kiln pipelines run")
    if json_out:
        print_json(run.model_dump(mode="json"))
        return
    console.print(
        f"queued run {run.id} of {name}; a running `kiln daemon` builds it (or: kiln daemon --once)"
    )


def history(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    limit: LimitOption = 50,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every run of a pipeline, newest first: trigger and cause, build, and why it was skipped or failed."""
    with _store(data_dir) as store:
        runs = store.runs(name, limit=limit)
    if json_out:
        print_json([r.model_dump(mode="json") for r in runs])
        return
    if not runs:
        console.print(f"{name} has no runs yet")
        return
    show(_runs_table(runs))


def _set_enabled(name: str, enabled: bool, data_dir: Path | None, json_out: bool) -> None:
    with _store(data_dir) as store:
        p = store.set_enabled(name, enabled, reason="disabled with kiln pipelines disable")
    if json_out:
        print_json(p.model_dump(mode="json"))
        return
    console.print(f"{name} {'enabled' if enabled else 'disabled'}")


def enable(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Let schedules and triggers start runs again (and reset the failure count)."""
    _set_enabled(name, True, data_dir, json_out)


def disable(
    name: Annotated[str, typer.Argument(help="Pipeline name.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Stop schedules and triggers from starting runs (manual runs still run)."""
    _set_enabled(name, False, data_dir, json_out)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Pipelines: recipes built on a schedule and on triggers.",
        no_args_is_help=True,
        epilog=epilog("pipelines"),
    )
    group.command("apply")(apply)
    group.command("list")(list_pipelines)
    group.command("show")(show_pipeline)
    group.command("run")(run_pipeline)
    group.command("history")(history)
    group.command("enable")(enable)
    group.command("disable")(disable)
    app.add_typer(group, name="pipelines")
