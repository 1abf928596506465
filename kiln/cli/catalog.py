"""``kiln images …`` and ``kiln builds …``: what the catalog knows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.catalog import BuildRecord, Catalog, ImageRecord
from kiln.catalog.buildlog import clock, describe, read_log, where
from kiln.catalog.schemas import ImageState
from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json, show
from kiln.cli.exitcodes import epilog
from kiln.cli.lineage import images_lineage, list_outdated
from kiln.errors import UsageError
from kiln.store import Store
from kiln.units import human_size

FOLLOW_SECONDS = 0.5
STATUS_STYLE = {"running": "yellow", "succeeded": "green", "failed": "red"}
MARKER = {
    "start": "[bold]‣[/]",
    "ok": "[green]✓[/]",
    "fail": "[red]✗[/]",
    "output": "[dim]│[/]",
    "warning": "[yellow]![/]",
    "error": "[red]![/]",
    "info": " ",
}


@contextmanager
def _catalog(data_dir: Path | None) -> Iterator[Catalog]:
    catalog = Catalog.open(open_store(data_dir).database_url)
    try:
        yield catalog
    finally:
        catalog.close()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _short(digest: str, length: int = 12) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"{algo}:{hexdigest[:length]}" if hexdigest else digest[:length]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"


# --- images ---------------------------------------------------------------------------------------


def images_list(
    name: Annotated[str | None, typer.Argument(help="Only versions of this image.")] = None,
    package: Annotated[
        str | None,
        typer.Option(
            "--package",
            metavar="NAME[<|<=|=|>=|>VERSION]",
            help="Only images containing this binary or source package (at such a Debian version).",
        ),
    ] = None,
    below: Annotated[
        str | None,
        typer.Option("--below", help="With --package NAME: only where it is older (Debian version)."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", metavar="KEY=VALUE", help="Only images with this label.")
    ] = None,
    state: Annotated[ImageState | None, typer.Option("--state", help="Only images in this state.")] = None,
    cve: Annotated[
        str | None, typer.Option("--cve", help="Only images affected by it (local vulnerability database).")
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent", metavar="REF", help="Only images built on it (image, digest, debian:RELEASE)."
        ),
    ] = None,
    outdated: Annotated[
        bool, typer.Option("--outdated", help="Only images whose parent has a newer matching version.")
    ] = False,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """List recorded image versions, filtered (every filter given must hold) by label, state, package,
    CVE, parent and being out of date; with --package or --cve, also what matched in each image."""
    from kiln.cli.fleet import list_images

    if outdated and all(f is None for f in (package, below, label, state, cve, parent)):
        list_outdated(data_dir, name, json_out=json_out)  # alone: the reasons table
        return

    list_images(name, package, below, label or [], state, cve, parent, outdated=outdated, data_dir=data_dir,
                json_out=json_out)  # fmt: skip


def images_packages(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION[/BUILD]]", help="Image reference.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """List the packages recorded for an image."""
    with _catalog(data_dir) as catalog:
        image = catalog.get_image(ref)
        packages = catalog.packages(image.ref)
    if json_out:
        print_json([p.model_dump(mode="json") for p in packages])
        return
    if not packages:
        console.print(f"no packages recorded for {image.ref}")
        return
    table = Table("PACKAGE", "VERSION", "ARCH", "SOURCE", "SOURCE VERSION", box=None)
    for p in packages:
        table.add_row(
            escape(p.name), escape(p.version), p.architecture, escape(p.source), escape(p.source_version)
        )
    show(table)


def images_show(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION[/BUILD]]", help="Image reference.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one image version: digests, components, artifacts, evidence, lineage."""
    from kiln.catalog.labels import image_labels

    with _catalog(data_dir) as catalog:
        image = catalog.get_image(ref)
        labels = image_labels(catalog, image.ref)
        lineage = catalog.lineage(image.ref)
        children = catalog.children(image.ref)
        outdated = catalog.outdated_reason(image.ref)
        if not json_out:  # the JSON names its build
            _say_which(ref, image, catalog)
    if json_out:
        print_json(
            {
                **image.model_dump(mode="json"),
                "labels": labels,
                "lineage": [entry.ref for entry in lineage],
                "children": [child.ref for child in children],
                "outdated": outdated.model_dump(mode="json") if outdated else None,
            }
        )
        return
    _print_image(image)
    if labels:
        console.print("[bold]labels[/]  " + escape(", ".join(f"{k}={v}" for k, v in labels.items())))
    if outdated is not None:
        console.print(f"[bold yellow]outdated[/]  {escape(outdated.reason)}", soft_wrap=True)
    chain = " ← ".join([image.ref, *(entry.ref for entry in lineage)])
    console.print(f"[bold]lineage[/]  {escape(chain)}", soft_wrap=True)
    if children:
        console.print(f"[bold]built on it[/]  {escape(', '.join(c.ref for c in children))}", soft_wrap=True)


def _say_which(ref: str, image: ImageRecord, catalog: Catalog) -> None:
    """When ``ref`` names no build and several match, say (on stderr) which one was picked."""
    from kiln.catalog.refs import ImageRef

    wanted = ImageRef.parse(ref)
    if wanted.build is not None:
        return
    same = [i for i in catalog.list_images(image.name) if wanted.version in (None, i.version)]
    if len(same) > 1:
        what = f"{image.name}@{wanted.version}" if wanted.version else image.name
        err_console.print(
            f"[dim]picked {escape(image.ref)}, the newest of {len(same)} builds of {escape(what)} "
            f"(name one with {escape(image.name)}@VERSION/BUILD)[/]"
        )


def _print_image(image: ImageRecord) -> None:
    facts = Table.grid(padding=(0, 2))
    for key, value in (
        ("image", image.ref),
        ("digest", image.digest),
        ("created", f"{_when(image.created)} UTC"),
        ("size", human_size(image.size)),
        ("state", image.state),
        ("parent", image.parent + (f" ({image.parent_digest})" if image.parent_digest else "")),
        ("description", image.description or "-"),
        ("build", image.build_id),
    ):
        facts.add_row(f"[bold]{key}[/]", escape(value))
    show(facts)
    if image.components:
        table = Table("COMPONENT", "VERSION", "DIGEST", "PARAMETERS", title="components", box=None)
        for c in image.components:
            params = ", ".join(f"{k}={v}" for k, v in sorted(c.parameters.items()))
            table.add_row(escape(c.name), escape(c.version), _short(c.digest), escape(params or "-"))
        show(table)
    if image.artifacts:
        table = Table("KIND", "PATH", "DIGEST", "SIZE", title="artifacts", box=None)
        for a in image.artifacts:
            table.add_row(a.kind, escape(a.path), _short(a.digest), human_size(a.size))
        show(table)
    if image.evidence:
        table = Table("EVIDENCE", "PATH", "DIGEST", "SUMMARY", title="evidence", box=None)
        for e in image.evidence:
            table.add_row(e.kind, escape(e.path), _short(e.digest), escape(_summary(e.summary) or "-"))
        show(table)


def _summary(value: object) -> str:
    """A compact one-line rendering of an evidence summary (nested dicts in parentheses)."""
    if isinstance(value, dict):
        return ", ".join(
            f"{k} ({_summary(v)})" if isinstance(v, dict) else f"{k}: {_summary(v)}" for k, v in value.items()
        )
    if isinstance(value, list):
        return " ".join(_summary(v) for v in value)
    return str(value)


# --- builds ---------------------------------------------------------------------------------------


def builds_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent builds.")] = 50,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """List recent builds, newest first."""
    with _catalog(data_dir) as catalog:
        builds = catalog.list_builds(limit)
    if json_out:
        print_json([b.model_dump(mode="json") for b in builds])
        return
    if not builds:
        console.print("no builds yet; start one with: kiln build RECIPE")
        return
    table = Table("BUILD", "RECIPE", "STATUS", "STARTED (UTC)", "DURATION", "IMAGE", box=None)
    for b in builds:
        table.add_row(
            b.id[:12], escape(f"{b.recipe_name}@{b.recipe_version}"), _status(b.status),
            _when(b.started), _duration(b.duration), escape(b.image or "-"),
        )  # fmt: skip
    show(table)


def builds_show(
    build_id: Annotated[str, typer.Argument(metavar="ID", help="Build id or a unique prefix of it.")],
    log: Annotated[bool, typer.Option("--log", help="Print the build log (JSON lines with --json).")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="With --log: keep printing until the build ends.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", min=1, help="With --log: that attempt's log (a retried queued build)."),
    ] = None,
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one build; with --log, its event log (from any machine: see docs/scale-out.md)."""
    if follow and not log:
        raise UsageError("--follow goes with --log", hint="kiln builds show ID --log --follow")
    if attempt is not None and (follow or not log):
        raise UsageError("--attempt goes with --log, without --follow (which follows the current attempt)",
                         hint="kiln builds show ID --log --attempt 1")  # fmt: skip
    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        build = catalog.get_build(build_id)
        waiting = _waiting(catalog, build)
        if log and follow:
            _follow_log(catalog, store, build, raw=json_out)
            return
        if log:
            path = _attempt_log(catalog, store, build, attempt, raw=json_out)
    if log:
        _print_log(path, raw=json_out)
    elif json_out:
        print_json({**build.model_dump(mode="json"), **({"waiting": waiting} if waiting else {})})
    else:
        _print_build(build)
        if waiting:
            console.print(f"[yellow]{escape(waiting)}[/]")


def _waiting(catalog: Catalog, build: BuildRecord) -> str | None:
    """Why a queued build has not started (no worker with the capabilities it needs)."""
    if build.status != "queued":
        return None
    from kiln.catalog.queue import why_waiting

    return why_waiting(catalog, build.id)


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _print_build(build: BuildRecord) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_row("[bold]build[/]", build.id)
    grid.add_row(
        "[bold]recipe[/]", escape(f"{build.recipe_name}@{build.recipe_version} ({build.recipe_path})")
    )
    grid.add_row("[bold]status[/]", _status(build.status))
    grid.add_row("[bold]started[/]", f"{_when(build.started)} UTC")
    grid.add_row("[bold]finished[/]", f"{_when(build.finished)} UTC" if build.finished else "-")
    grid.add_row("[bold]duration[/]", _duration(build.duration))
    grid.add_row("[bold]image[/]", escape(build.image or "-"))
    grid.add_row("[bold]log[/]", escape(build.log_path))
    if build.error:
        grid.add_row("[bold red]error[/]", escape(build.error))
    show(grid)


def _attempt_log(
    catalog: Catalog, store: Store, build: BuildRecord, attempt: int | None, *, raw: bool
) -> Path:
    """The log of ``attempt`` (default: the current one; a banner names the earlier ones)."""
    from kiln.catalog.queue import attempts
    from kiln.readthrough import shared_store
    from kiln.shippedlogs import current_attempt, log_file, mirror_attempt

    current = current_attempt(catalog, build.id)
    if attempt is None or attempt == current:
        if current is not None and current > 1:
            _attempt_banner(catalog, build.id, current, raw=raw)
        return log_file(store, build, current)
    known = [a["attempt"] for a in attempts(catalog, build.id)]
    if attempt not in known:
        listed = f"its attempts: {', '.join(map(str, known))}" if known else "it was not queued"
        raise UsageError(f"build {build.id} has no attempt {attempt} ({listed})")
    shared = shared_store(store)
    if shared is None:
        raise UsageError(f"the log of attempt {attempt} of build {build.id} is only in the shared store",
                         hint="set KILN_STORE_URL (the store the workers ship their logs to)")  # fmt: skip
    return mirror_attempt(store, shared, build.id, attempt)


def _attempt_banner(catalog: Catalog, build_id: str, attempt: int | None, *, raw: bool) -> None:
    """A line between attempts of a retried build: which attempt follows, how the earlier ones ended."""
    from kiln.catalog.queue import attempts

    earlier = [a for a in attempts(catalog, build_id) if attempt is not None and a["attempt"] < attempt]
    ended = "; ".join(
        f"attempt {a['attempt']} {a['outcome'] or 'ended'}" + (f" ({a['error']})" if a["error"] else "")
        for a in earlier
    )
    text = f"--- attempt {attempt} of build {build_id}"
    if ended:
        text += f" (earlier: {ended}; their logs: kiln builds show {build_id[:12]} --log --attempt N)"
    (err_console if raw else console).print(f"[bold cyan]{escape(text)}[/]")


def _follow_log(catalog: Catalog, store: Store, build: BuildRecord, *, raw: bool) -> None:
    """Print the log's records as they come until the build is neither queued nor running; a retried
    build's follower moves to the new attempt's log as soon as it is claimed, after a banner."""
    from kiln.shippedlogs import current_attempt, log_file, wait_shipped

    printed, depth, shown = 0, 0, None
    while True:
        build = catalog.get_build(build.id)
        attempt = current_attempt(catalog, build.id)
        if attempt != shown:
            if shown is not None or (attempt or 1) > 1:
                _attempt_banner(catalog, build.id, attempt, raw=raw)
            printed, depth, shown = 0, 0, attempt
        path = log_file(store, build, attempt)
        if path.is_file():
            printed, depth = _print_log(path, raw=raw, skip=printed, depth=depth, whole=True)
        if build.status not in ("queued", "running"):
            if not wait_shipped(store, build, attempt=attempt):
                err_console.print("[yellow]the build's worker never shipped the end of its log[/]")
            path = log_file(store, build, attempt)
            if path.is_file():
                _print_log(path, raw=raw, skip=printed, depth=depth)
            return
        time.sleep(FOLLOW_SECONDS)


def _print_log(
    path: Path, *, raw: bool, skip: int = 0, depth: int = 0, whole: bool = False
) -> tuple[int, int]:
    """Print the log's lines after the first ``skip`` (``whole``: not a last line still being
    written); returns (lines printed or skipped, nesting depth)."""
    count = 0
    lines = list(read_log(path))
    if whole and lines and lines[-1].record is None:
        lines.pop()  # torn: printed once complete
    for line in lines:
        count += 1
        if count <= skip:
            continue
        if raw:
            if line.record is not None:
                typer.echo(line.raw)
            continue
        if line.record is None:
            console.print(f"[yellow]line {line.number} is not a log record:[/] {escape(line.raw)}")
            continue
        marker, text = describe(line.record)
        if line.record.get("kind") == "end":
            depth = max(0, depth - 1)
        scope = where(line.record)
        prefix = f"[dim]{clock(line.record)}[/] {'  ' * depth}{MARKER[marker]} "
        if line.record.get("kind") == "start":
            depth += 1
        if scope:
            prefix += f"[cyan]{escape(scope)}[/] "
        body = f"[dim]{escape(text)}[/]" if marker == "output" else escape(text)
        console.print(prefix + body, soft_wrap=True)
    return count, depth


def register(app: typer.Typer) -> None:
    images = typer.Typer(help="Recorded image versions.", no_args_is_help=True, epilog=epilog("images"))
    images.command("list")(images_list)
    images.command("show")(images_show)
    images.command("packages")(images_packages)
    from kiln.cli.fleet import images_label, images_unlabel

    images.command("label")(images_label)
    images.command("unlabel")(images_unlabel)
    images.command("lineage")(images_lineage)
    from kiln.cli.outdated import images_outdated_packages

    images.command("outdated-packages")(images_outdated_packages)
    from kiln.cli.lifecycle import register_images

    register_images(images)  # deprecate, disable, activate, retire, history
    builds = typer.Typer(help="Build records and logs.", no_args_is_help=True, epilog=epilog("builds"))
    builds.command("list")(builds_list)
    builds.command("show")(builds_show)
    app.add_typer(images, name="images")
    app.add_typer(builds, name="builds")
