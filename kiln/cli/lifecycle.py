"""``kiln images deprecate|disable|retire|activate|history`` and ``kiln lifecycle apply``: image
lifecycle states, their history, and policies that move old versions along."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.cli.common import (
    DataDirOption,
    JsonOption,
    console,
    err_console,
    open_store,
    print_json,
    settings,
    show,
)
from kiln.cli.exitcodes import epilog
from kiln.errors import KilnError
from kiln.units import human_size

if TYPE_CHECKING:
    from kiln.catalog import Catalog
    from kiln.lifecycle.move import Moved
    from kiln.lifecycle.states import State
    from kiln.lifecycle.unpublish import Unpublisher
    from kiln.store import Store

RefArgument = Annotated[str, typer.Argument(metavar="NAME[@VERSION[/BUILD]]", help="Image reference.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded with who and when).")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Distribution targets from this file (default: the image's recipe)."),
]


class ChangesRefused(KilnError):
    """Some planned changes were not made (exit code 1)."""


@contextmanager
def _opened(data_dir: Path | None) -> Iterator[tuple[Store, Catalog]]:
    from kiln.catalog import Catalog

    store = open_store(data_dir)
    catalog = Catalog.open(store.database_url)
    try:
        yield store, catalog
    finally:
        catalog.close()


def _unpublisher(config: Path | None) -> Unpublisher:
    from kiln.lifecycle.states import default_actor
    from kiln.lifecycle.unpublish import unpublisher

    return unpublisher(settings=settings(), environ=os.environ, config=config, requester=default_actor())


def _print_moved(moved: Moved) -> None:
    change = moved.change
    console.print(
        f"{escape(change.image)}: {change.from_state} → {change.to_state} (by {escape(change.actor)})"
    )
    if moved.retired is not None:
        for item in moved.retired.removed:
            console.print(f"  deleted {escape(str(item.path))} ({human_size(item.freed)} freed)")
        for path, why in moved.retired.kept:
            console.print(f"  kept    {escape(str(path))} ({escape(why)})")
        console.print(f"  freed {human_size(moved.retired.freed)}; SBOMs, provenance and evidence are kept")
    for target in moved.unpublished:
        orphans = "; ".join(target.get("orphans", []))
        console.print(
            f"  {target['result']} from {escape(str(target['target']))}"
            + (f": {escape(orphans)}" if orphans else "")
        )


def _change(
    to: State, ref: str, reason: str, data_dir: Path | None, json_out: bool, config: Path | None = None
) -> None:
    from kiln.lifecycle.move import move
    from kiln.lifecycle.states import default_actor

    with _opened(data_dir) as (store, catalog):
        unpublish = _unpublisher(config) if to in ("disabled", "retired") else None
        if unpublish is not None:
            from kiln.lifecycle.plan import concerns

            for concern in concerns(catalog, ref):
                err_console.print(f"[yellow]warning:[/] {escape(concern)}")
        moved = move(store, catalog, ref, to, actor=default_actor(), reason=reason, unpublish=unpublish)
    if json_out:
        print_json(moved.as_dict())
    else:
        _print_moved(moved)


def images_deprecate(ref: RefArgument, reason: ReasonOption, data_dir: DataDirOption = None,
                     json_out: JsonOption = False) -> None:  # fmt: skip
    """Deprecate an image version: still usable (as a parent, for distribution, tests), with a warning."""
    _change("deprecated", ref, reason, data_dir, json_out)


def images_disable(ref: RefArgument, reason: ReasonOption, config: ConfigOption = None,
                   data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:  # fmt: skip
    """Disable an image version: kept, but not usable as a parent, for distribution, promotion or new
    test instances; it is unpublished from the distribution targets it was published to."""
    _change("disabled", ref, reason, data_dir, json_out, config)


def images_activate(ref: RefArgument, reason: ReasonOption, data_dir: DataDirOption = None,
                    json_out: JsonOption = False) -> None:  # fmt: skip
    """Make a deprecated or disabled image version active again (a retired one cannot be)."""
    _change("active", ref, reason, data_dir, json_out)


def images_retire(
    ref: RefArgument,
    reason: ReasonOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Retire an image version for good: unpublish it, delete its artifacts that no other image uses;
    keep its catalog record, SBOMs, provenance, scan and compliance evidence forever."""
    if not yes:
        typer.confirm(
            f"retire {ref}? its artifacts are deleted and it cannot be made active again", abort=True
        )
    _change("retired", ref, reason, data_dir, json_out, config)


def images_history(ref: RefArgument, data_dir: DataDirOption = None, json_out: JsonOption = False) -> None:
    """Show an image version's state changes: from, to, who, when, why."""
    from kiln.lifecycle.states import history

    with _opened(data_dir) as (_store, catalog):
        image = catalog.get_image(ref)
        changes = history(catalog, image.ref)
    if json_out:
        print_json(
            {
                "image": image.ref,
                "state": image.state,
                "changes": [c.model_dump(mode="json") for c in changes],
            }
        )
        return
    console.print(f"{escape(image.ref)} is {image.state}")
    if not changes:
        console.print("no state changes recorded (active since it was built)")
        return
    table = Table("WHEN (UTC)", "FROM", "TO", "WHO", "WHY", box=None)
    for c in changes:
        table.add_row(
            c.at.strftime("%Y-%m-%d %H:%M:%S"), c.from_state, c.to_state, escape(c.actor), escape(c.reason)
        )
    show(table)


def register_images(images: typer.Typer) -> None:
    """Add the lifecycle commands to ``kiln images`` (called by kiln.cli.catalog)."""
    images.command("deprecate")(images_deprecate)
    images.command("disable")(images_disable)
    images.command("activate")(images_activate)
    images.command("retire")(images_retire)
    images.command("history")(images_history)


def lifecycle_apply(
    policy: Annotated[Path, typer.Argument(metavar="POLICY", help="Lifecycle policy file (YAML).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Carry out the plan without asking.")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Plan what a lifecycle policy changes (per image: from → to, the rule that matched) and, with
    --yes (or after confirming), carry out exactly that plan."""
    from kiln.errors import UsageError
    from kiln.lifecycle.plan import apply, plan
    from kiln.lifecycle.policy import load_lifecycle_policy
    from kiln.lifecycle.states import default_actor

    if dry_run and yes:
        raise UsageError("give --dry-run or --yes, not both")
    loaded = load_lifecycle_policy(policy)
    with _opened(data_dir) as (store, catalog):
        planned = plan(catalog, loaded)
        if dry_run or not json_out:
            _print_plan(planned.as_dict(), json_out=json_out, dry_run=dry_run)
        if dry_run or not planned.changes:
            return
        if not yes:
            typer.confirm(f"carry out these {len(planned.changes)} change(s)?", abort=True)
        done = apply(store, catalog, planned, actor=default_actor(), unpublish=_unpublisher(config))
    refused = [d for d in done if d.error]
    if json_out:
        print_json({**planned.as_dict(), "applied": [
            {**d.change.as_dict(), "error": d.error, "freed": d.freed} for d in done
        ]})  # fmt: skip
    else:
        for d in done:
            mark = f"[red]refused[/] ({escape(d.error)})" if d.error else "[green]done[/]"
            console.print(f"{escape(d.change.image)}: {d.change.from_state} → {d.change.to_state} {mark}")
        freed = sum(d.freed for d in done)
        console.print(f"{len(done) - len(refused)} of {len(done)} change(s) made; {human_size(freed)} freed")
    if refused:
        raise ChangesRefused(
            f"{len(refused)} planned change(s) were not made", hint="plan again with --dry-run"
        )


def _print_plan(plan: dict[str, object], *, json_out: bool, dry_run: bool) -> None:
    if json_out:
        print_json(plan)
        return
    changes = plan["changes"]
    excluded = plan["excluded"]
    assert isinstance(changes, list) and isinstance(excluded, list)
    if not changes:
        console.print("nothing to change")
    else:
        console.print(f"plan{' (dry run)' if dry_run else ''}: {len(changes)} change(s)")
        table = Table("IMAGE", "FROM", "TO", "RULE", box=None)
        for c in changes:
            table.add_row(escape(c["image"]), c["from"], c["to"], escape(c["rule"]))
        show(table)
    for e in excluded:
        err_console.print(f"[dim]excluded {escape(e['image'])}: {escape(e['reason'])}[/]")


def register(app: typer.Typer) -> None:
    lifecycle = typer.Typer(help="Lifecycle policies over the catalog.", no_args_is_help=True,
                            epilog=epilog("lifecycle"))  # fmt: skip
    lifecycle.command("apply")(lifecycle_apply)
    app.add_typer(lifecycle, name="lifecycle")
