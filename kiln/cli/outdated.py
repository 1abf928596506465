"""``kiln images outdated-packages REF``: packages of an image with newer versions in its archive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from kiln.cli.common import DataDirOption, JsonOption, console, open_store, print_json


def _json(found: Any) -> dict[str, Any]:
    report = found.report
    return {
        "image": found.image,
        "release": found.release,
        "packages": report.packages,
        "recorded_archive": [s.model_dump() for s in found.recorded],
        "archive": [s.model_dump() for s in report.archive],
        "security": report.security,
        "updates": [
            {
                **u._asdict(),
                "fixes": [
                    {"id": f.vuln_id, "fixed": f.fixed, "severity": f.severity} for f in found.fixes_of(u)
                ],
            }
            for u in report.updates
        ],
    }


def images_outdated_packages(
    ref: Annotated[str, typer.Argument(help="Image: NAME, NAME@1.2.3 or NAME@1.2.3/4.")],
    data_dir: DataDirOption = None,
    json_out: JsonOption = False,
) -> None:
    """Packages of REF with newer versions in its archive suites, and the CVEs those fix (local
    vulnerability database). Reads each suite's Release file conditionally; indices are cached."""
    from kiln.build.freshness import image_updates
    from kiln.catalog import Catalog

    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        found = image_updates(store, catalog, ref)
    if json_out:
        print_json(_json(found))
        return
    report = found.report
    for state in found.recorded:
        built = datetime.fromtimestamp(state.date, UTC)
        console.print(f"[dim]built from {state.url} {state.suite} of {built:%Y-%m-%d %H:%M} UTC[/]")
    if not report.updates:
        console.print(f"{found.image}: {report.summary()}")
        return
    table = Table(title=f"{found.image}: {report.summary()}")
    for column in ("package", "installed", "available", "suite", "fixes"):
        table.add_column(column)
    for u in report.updates:
        fixes = ", ".join(f"{f.vuln_id} ({f.severity})" for f in found.fixes_of(u))
        suite = f"[red]{u.suite}[/]" if u.security else u.suite
        table.add_row(u.name, u.installed, u.available, suite, fixes)
    console.print(table)
