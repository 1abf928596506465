"""``kiln diff A B``: what changed from image version A to image version B."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json
from kiln.cli.exitcodes import epilog
from kiln.diffing.images import ComponentChange
from kiln.units import human_size

MAX_FILES = 200


def diff_command(
    old: Annotated[
        str,
        typer.Argument(
            metavar="A", help="Image version to compare from: NAME, NAME@VERSION or NAME@VERSION/BUILD."
        ),
    ],
    new: Annotated[str, typer.Argument(metavar="B", help="Image version to compare with A.")],
    no_files: Annotated[
        bool, typer.Option("--no-files", help="Skip the file-level diff of the root trees.")
    ] = False,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Packages, CVEs (current vulnerability database), components and parameters, config, compliance
    score, size and files that differ from A to B."""
    from kiln.catalog import Catalog
    from kiln.diffing.images import diff_images
    from kiln.evidence.vulndb import VulnDb

    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        result = diff_images(catalog, store, old, new, db=VulnDb.open(store), files=not no_files)
    if json_out:
        print_json({**result.model_dump(mode="json"), "empty": result.empty})
        return
    if result.empty:
        console.print(f"no differences between {escape(result.old)} and {escape(result.new)}")
        return
    console.print(f"[bold]{escape(result.old)} → {escape(result.new)}[/]")
    p = result.packages
    _section("packages", [
        *(f"[green]+[/] {x.name} {x.version} ({x.architecture})" for x in p.added),
        *(f"[red]-[/] {x.name} {x.version} ({x.architecture})" for x in p.removed),
        *(f"[cyan]↑[/] {x.name} {x.old} → {x.new}" for x in p.upgraded),
        *(f"[yellow]↓[/] {x.name} {x.old} → {x.new}" for x in p.downgraded),
    ])  # fmt: skip
    c = result.cves
    _section("CVEs", [
        *(f"[green]fixed[/] {x.vuln_id} ({x.package} {x.installed}, {x.severity})" for x in c.fixed),
        *(f"[red]introduced[/] {x.vuln_id} ({x.package} {x.installed}, {x.severity}, {x.status})"
          for x in c.introduced),
        *([f"[dim]{c.note}[/]"] if c.note else []),
    ])  # fmt: skip
    _section("components", [_component(x) for x in result.components])
    _section("config", [f"{escape(v.name)}: {_show(v.old)} → {_show(v.new)}" for v in result.config])
    lines = []
    if result.compliance_score is not None:
        s = result.compliance_score
        lines.append(f"compliance score: {_show(s.old)} → {_show(s.new)}")
    if result.size is not None:
        lines.append(f"size: {human_size(result.size.old)} → {human_size(result.size.new)} "
                     f"({'+' if result.size.new >= result.size.old else '-'}"
                     f"{human_size(abs(result.size.new - result.size.old))})")  # fmt: skip
    _section("evidence", lines)
    if result.files is not None:
        files = result.files.changes
        shown = [
            f"{'+' if f.change == 'added' else '-' if f.change == 'removed' else '~'} {escape(f.path)} "
            f"({f.type}, {_sizes(f.old_size, f.new_size)}, mode {_modes(f.old_mode, f.new_mode)})"
            + (escape(f" [{', '.join(f.fields)}]") if f.fields else "")
            for f in files[:MAX_FILES]
        ]
        if len(files) > MAX_FILES:
            shown.append(f"… and {len(files) - MAX_FILES} more (see --json)")
        _section(
            f"files ({len(files)})", shown + ([f"[dim]{result.files.note}[/]"] if result.files.note else [])
        )


def _component(x: ComponentChange) -> str:
    versions = (
        f"{x.old_version} → {x.new_version}"
        if x.old_version and x.new_version and x.old_version != x.new_version
        else x.new_version or x.old_version or ""
    )
    text = f"{x.change} {escape(x.name)} {escape(versions)}"
    text += " (document changed)" if x.document_changed else ""
    return text + "".join(f"; {escape(v.name)}: {_show(v.old)} → {_show(v.new)}" for v in x.parameters)


def _show(value: Any) -> str:
    return escape("-" if value is None or value is False else "set" if value is True else str(value))


def _sizes(old: int | None, new: int | None) -> str:
    if old is None or new is None or old == new:
        return human_size(new if new is not None else old or 0)
    return f"{human_size(old)} → {human_size(new)}"


def _modes(old: str | None, new: str | None) -> str:
    return f"{old} → {new}" if old and new and old != new else (new or old or "-")


def _section(title: str, lines: list[str]) -> None:
    if not lines:
        return
    console.print(f"[bold]{escape(title)}[/]")
    for line in lines:
        console.print(f"  {line}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("diff", epilog=epilog("diff"))(diff_command)
