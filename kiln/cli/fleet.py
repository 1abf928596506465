"""``kiln images list`` filters and ``kiln images label/unlabel``: the fleet questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kiln.catalog.fleet import FleetMatch, FleetQuery, PackageSpec, check_cve, query_catalog
from kiln.catalog.labels import check_key, parse_assignments, remove_labels, set_labels
from kiln.catalog.schemas import ImageState
from kiln.cli.catalog import _catalog, _short, _when
from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json, show
from kiln.errors import UsageError
from kiln.units import human_size

RefArgument = Annotated[str, typer.Argument(metavar="NAME[@VERSION[/BUILD]]", help="Image reference.")]


def build_query(
    name: str | None,
    package: str | None,
    below: str | None,
    labels: list[str],
    state: ImageState | None,
    cve: str | None,
    parent: str | None,
    outdated: bool = False,
) -> FleetQuery:
    """The query the options describe (every bad value is a usage error, exit code 2)."""
    if below is not None:
        if package is None:
            raise UsageError(
                "--below needs --package", hint="e.g. kiln images list --package 'openssl<3.0.13-1'"
            )
        spec = PackageSpec.parse(package)
        if spec.op is not None:
            raise UsageError("give the version either in --package NAME<VERSION or with --below, not both")
        package = f"{spec.name}<{below}"
    return FleetQuery(
        name=name,
        labels=parse_assignments(labels),
        state=state,
        package=PackageSpec.parse(package) if package is not None else None,
        cve=check_cve(cve) if cve is not None else None,
        parent=parent.strip() if parent is not None else None,
        outdated=outdated,
    )


def list_images(
    name: str | None,
    package: str | None,
    below: str | None,
    labels: list[str],
    state: ImageState | None,
    cve: str | None,
    parent: str | None,
    *,
    outdated: bool = False,
    data_dir: Path | None,
    json_out: bool,
) -> None:
    query = build_query(name, package, below, labels, state, cve, parent, outdated)
    db = None
    if query.cve is not None:
        from kiln.evidence.vulndb import VulnDb

        db = VulnDb.open(open_store(data_dir))
        db.require_data()
    with _catalog(data_dir) as catalog:
        matches = query_catalog(catalog, query, db)
    if json_out:
        if query.detailed:
            print_json([m.model_dump(mode="json", exclude_none=False) for m in matches])
        else:
            print_json([{**m.image.model_dump(mode="json"), "labels": m.labels} for m in matches])
        return
    if query.detailed:
        _print_details(matches, query)
    else:
        _print_images(matches, filtered=query != FleetQuery(name=name))


def _print_images(matches: list[FleetMatch], *, filtered: bool) -> None:
    if not matches:
        console.print(
            "no image matches these filters"
            if filtered
            else "no images recorded yet; build one with: kiln build RECIPE"
        )
        return
    labelled = any(m.labels for m in matches)
    columns = ["IMAGE", "VERSION", "DIGEST", "SIZE", "CREATED (UTC)", "STATE", "PARENT"]
    table = Table(*columns, *(["LABELS"] if labelled else []), box=None)
    for m in matches:
        i = m.image
        row = [escape(i.name), f"{i.version}/{i.build}", _short(i.digest), human_size(i.size),
               _when(i.created), i.state, escape(i.parent)]  # fmt: skip
        if labelled:
            row.append(escape(", ".join(f"{k}={v}" for k, v in m.labels.items())))
        table.add_row(*row)
    show(table)


def _print_details(matches: list[FleetMatch], query: FleetQuery) -> None:
    if not matches:
        what = [f"package {query.package}" if query.package else "", f"{query.cve}" if query.cve else ""]
        console.print(f"no recorded image matches ({', '.join(w for w in what if w)})")
        return
    columns = ["IMAGE", "DIGEST", "STATE"]
    if query.package is not None:
        columns.append("PACKAGES")
    if query.cve is not None:
        columns.append("FINDINGS")
    table = Table(*columns, box=None)
    for m in matches:
        row = [escape(m.image.ref), _short(m.image.digest), m.image.state]
        if query.package is not None:
            row.append(escape(", ".join(
                f"{p.name} {p.version}" + (f" (source {p.source})" if p.source != p.name else "")
                for p in m.packages
            )))  # fmt: skip
        if query.cve is not None:
            row.append(escape("; ".join(
                f"{f.package} {f.installed}: {f.status}" + (f", fixed in {f.fixed}" if f.fixed else "")
                + f" ({f.severity})" + (f" [allowed until {f.allowed.expires}]" if f.allowed else "")
                for f in m.findings
            )))  # fmt: skip
        table.add_row(*row)
    show(table)


def images_label(
    ref: RefArgument,
    labels: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Labels to set.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Set labels on an image version (an existing key gets the new value)."""
    wanted = parse_assignments(labels)
    with _catalog(data_dir) as catalog:
        image, now = set_labels(catalog, ref, wanted)
    _print_labels(image.ref, now, json_out=json_out)


def images_unlabel(
    ref: RefArgument,
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Label keys to remove.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Remove labels from an image version."""
    for key in keys:
        check_key(key)
    with _catalog(data_dir) as catalog:
        image, now = remove_labels(catalog, ref, keys)
    _print_labels(image.ref, now, json_out=json_out)


def _print_labels(ref: str, labels: dict[str, str], *, json_out: bool) -> None:
    if json_out:
        print_json({"image": ref, "labels": labels})
        return
    shown = ", ".join(f"{k}={v}" for k, v in labels.items()) or "none"
    console.print(f"{escape(ref)} labels: {escape(shown)}")
