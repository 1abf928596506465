"""``kiln components …`` and ``kiln recipes …``: the registry of published documents (thin commands
over :mod:`kiln.registry`)."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from kiln.catalog import Catalog
from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json, show
from kiln.cli.exitcodes import epilog
from kiln.registry.schemas import PublishOutcome

DocumentOption = Annotated[bool, typer.Option("--document", help="Print the stored document text only.")]
NameOption = Annotated[str | None, typer.Option("--name", help="Only versions of this name.")]


@contextmanager
def _catalog(data_dir: Path | None) -> Iterator[Catalog]:
    catalog = Catalog.open(open_store(data_dir).database_url)
    try:
        yield catalog
    finally:
        catalog.close()


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _published(outcome: PublishOutcome, json_out: bool) -> None:
    if json_out:
        print_json(outcome.model_dump(mode="json"))
    elif outcome.created:
        console.print(f"[green]published[/] {outcome.kind} {escape(outcome.name)}@{outcome.version} "
                      f"({outcome.digest})")  # fmt: skip
    else:
        console.print(f"{outcome.kind} {escape(outcome.name)}@{outcome.version} already published, unchanged")


# --- components -----------------------------------------------------------------------------------


def components_publish(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="AWSTOE component document (YAML).")],
    version: Annotated[
        str | None, typer.Option("--version", help="Semantic version (default: the document's version:).")
    ] = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Validate FILE (as kiln toe validate does) and publish it as NAME@VERSION (NAME: its name:)."""
    from kiln.registry.components import publish_component

    with _catalog(data_dir) as catalog:
        _published(publish_component(catalog, file, version=version, who=_who()), json_out)


def components_list(
    name: NameOption = None, data_dir: DataDirOption = None, json_out: JsonOption = False
) -> None:
    """List published component versions, built-ins included."""
    from kiln.registry.components import list_components

    with _catalog(data_dir) as catalog:
        found = list_components(catalog, name)
    if json_out:
        print_json([c.model_dump(mode="json") for c in found])
        return
    if not found:
        console.print(f"no published versions of {escape(name or '')}".rstrip())
        return
    table = Table("COMPONENT", "VERSION", "STATE", "DIGEST", "PUBLISHED (UTC)", "BY", box=None)
    for c in found:
        state = c.state + (" (built-in)" if c.builtin else "")
        table.add_row(escape(c.name), c.version, state, c.digest[:19],
                      c.published.strftime("%Y-%m-%d %H:%M:%S"), escape(c.published_by))  # fmt: skip
    show(table)


def components_show(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="1.2.3, 1.2.x, 1.x or latest.")],
    document: DocumentOption = False,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show the component version REF resolves to (with the registry's wildcard rules)."""
    from kiln.registry.components import get_component
    from kiln.registry.semver import split_ref

    with _catalog(data_dir) as catalog:
        found = get_component(catalog, *split_ref(ref))
    c = found.component
    rows = [
        ("component", c.ref),
        ("digest", c.digest),
        ("state", c.state),
        ("built-in", "yes" if c.builtin else "no"),
        ("platform", c.platform),
        ("description", c.description or "-"),
        ("published", f"{c.published:%Y-%m-%d %H:%M:%S} UTC by {c.published_by}"),
    ]
    if c.state == "deprecated":
        rows.append(("deprecated", f"{c.deprecated:%Y-%m-%d %H:%M:%S} UTC by {c.deprecated_by}: "
                                   f"{c.deprecation_reason}"))  # fmt: skip
    _show_published(c, found.document, rows, document=document, json_out=json_out)


def components_deprecate(
    ref: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="One exact version.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (shown whenever a build uses it).")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Deprecate one component version: still usable, with a warning; wildcards prefer active ones."""
    from kiln.errors import UsageError
    from kiln.registry.components import deprecate_component

    name, at, version = ref.partition("@")
    if not at:
        raise UsageError(f"'{ref}' names no version", hint="write NAME@VERSION, e.g. nginx@1.2.0")
    with _catalog(data_dir) as catalog:
        record = deprecate_component(catalog, name, version, reason=reason, who=_who())
    if json_out:
        print_json(record.model_dump(mode="json"))
    else:
        err_console.print(
            f"[yellow]deprecated[/] {escape(record.ref)}: {escape(record.deprecation_reason or '')}"
        )


# --- recipes --------------------------------------------------------------------------------------


def recipes_publish(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Recipe YAML file.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Validate FILE (as kiln validate does) and publish it as NAME@VERSION; then build it with
    kiln build kiln:recipes/NAME@VERSION. Local component files are refused: publish them first."""
    from kiln.registry.recipes import publish_recipe

    with _catalog(data_dir) as catalog:
        _published(publish_recipe(catalog, file, who=_who()), json_out)


def recipes_list(
    name: NameOption = None, data_dir: DataDirOption = None, json_out: JsonOption = False
) -> None:
    """List published recipe versions."""
    from kiln.registry.recipes import list_recipes

    with _catalog(data_dir) as catalog:
        found = list_recipes(catalog, name)
    if json_out:
        print_json([r.model_dump(mode="json") for r in found])
        return
    if not found:
        console.print("no published recipes yet; publish one with: kiln recipes publish FILE")
        return
    table = Table("RECIPE", "VERSION", "STATE", "DIGEST", "COMPONENTS", box=None)
    for r in found:
        table.add_row(escape(r.name), r.version, r.state, r.digest[:19], escape(", ".join(r.components)))
    show(table)


def recipes_show(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]", help="1.2.3, 1.2.x, 1.x or latest.")],
    document: DocumentOption = False,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show the recipe version REF resolves to."""
    from kiln.registry.recipes import get_recipe
    from kiln.registry.semver import split_ref

    with _catalog(data_dir) as catalog:
        found = get_recipe(catalog, *split_ref(ref))
    r = found.recipe
    rows = [
        ("recipe", r.ref),
        ("digest", r.digest),
        ("state", r.state),
        ("description", r.description or "-"),
        ("components", ", ".join(r.components)),
        ("published", f"{r.published:%Y-%m-%d %H:%M:%S} UTC by {r.published_by}"),
    ]
    _show_published(r, found.document, rows, document=document, json_out=json_out)


def _show_published(
    record: BaseModel, text: str, rows: list[tuple[str, str]], *, document: bool, json_out: bool
) -> None:
    """``show`` of a published component or recipe: its document (--document), the record with its
    document (--json), or the facts ``rows``."""
    if document:
        typer.echo(text, nl=False)
        return
    if json_out:
        print_json({**record.model_dump(mode="json"), "document": text})
        return
    facts = Table.grid(padding=(0, 2))
    for key, value in rows:
        facts.add_row(f"[bold]{key}[/]", escape(value))
    show(facts)


def register(app: typer.Typer) -> None:
    components = typer.Typer(
        help="Published component documents (name + semantic version).", no_args_is_help=True,
        epilog=epilog("components"),
    )  # fmt: skip
    components.command("publish")(components_publish)
    components.command("list")(components_list)
    components.command("show")(components_show)
    components.command("deprecate")(components_deprecate)
    recipes = typer.Typer(help="Published recipes.", no_args_is_help=True, epilog=epilog("recipes"))
    recipes.command("publish")(recipes_publish)
    recipes.command("list")(recipes_list)
    recipes.command("show")(recipes_show)
    app.add_typer(components, name="components")
    app.add_typer(recipes, name="recipes")
