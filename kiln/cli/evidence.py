"""``kiln sbom``, ``kiln scan``, ``kiln vulndb``, ``kiln comply``, ``kiln keys``, ``kiln verify``."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json
from kiln.errors import KilnError
from kiln.monitor import ConsoleMonitor

OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "negligible": "dim",
}


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        typer.echo(data.decode(), nl=False)
    else:
        output.write_bytes(data)
        err_console.print(f"wrote {output}")


def sbom(
    image: Annotated[str, typer.Argument(help="Image (name, name@1.2.3, name@1.2.3/4) or a root directory.")],
    fmt: Annotated[Literal["spdx", "cyclonedx"], typer.Option("--format", "-f")] = "spdx",
    output: OutputOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """SBOM of an image: SPDX 2.3 or CycloneDX 1.6 JSON (the recorded one if the build made it)."""
    from kiln.evidence.installed import read_inventory
    from kiln.evidence.sbom import cyclonedx_json, spdx_json
    from kiln.evidence.subject import resolve_image

    store = open_store(data_dir)
    with resolve_image(store, image) as resolved:
        kind = "sbom-spdx" if fmt == "spdx" else "sbom-cyclonedx"
        recorded = [e for e in (resolved.record.evidence if resolved.record else []) if e.kind == kind]
        if recorded and store.blob_path(recorded[0].digest).is_file():
            _emit(store.blob_path(recorded[0].digest).read_bytes(), output)
            return
        inventory = read_inventory(resolved.root)
        writer = spdx_json if fmt == "spdx" else cyclonedx_json
        _emit(writer(inventory, resolved.identity), output)


def scan(
    image: Annotated[str, typer.Argument(help="Image (name, name@1.2.3, name@1.2.3/4) or a root directory.")],
    fmt: Annotated[
        Literal["table", "json", "cyclonedx-vex", "sarif"], typer.Option("--format", "-f")
    ] = "table",
    output: OutputOption = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the JSON report here.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Match the image's packages against the local vulnerability database."""
    from kiln.evidence.scanexport import cyclonedx_vex, sarif
    from kiln.evidence.subject import resolve_image
    from kiln.evidence.vulndb import VulnDb
    from kiln.evidence.vulnscan import SCAN_FILES, scan_root

    store = open_store(data_dir)
    db = VulnDb.open(store)
    db.require_data()  # before unpacking the image
    with resolve_image(store, image, only=SCAN_FILES) as resolved:
        result = scan_root(resolved.root, db, image=image)
    if report is not None:
        report.write_bytes(result.to_json())
    if fmt == "json":
        _emit(result.to_json(), output)
    elif fmt == "cyclonedx-vex":
        _emit(cyclonedx_vex(result, resolved.identity.created), output)
    elif fmt == "sarif":
        _emit(sarif(result), output)
    else:
        table = Table("CVE", "package", "installed", "fixed", "severity", "status", box=None)
        for f in result.findings:
            status = Text(f.status + (f" ({f.note})" if f.note else ""))
            severity = Text(f.severity, style=SEVERITY_STYLE.get(f.severity, ""))
            table.add_row(f.vuln_id, f.package, f.installed, f.fixed or "-", severity, status)
        # Piped: wide enough that no column is cut (Rich would assume 80 columns).
        (console if console.is_terminal else Console(width=250, highlight=False)).print(table)
        s = result.summary()
        by = ", ".join(f"{k} {v}" for k, v in sorted(s["by_severity"].items(), key=lambda kv: kv[0]))
        console.print(
            f"{s['vulnerabilities']} vulnerabilities ({s['fixable']} fixable) in {result.packages} "
            f"packages, {result.distro} {result.release}" + (f": {by}" if by else "")
        )


def vulndb_import(
    location: Annotated[str, typer.Argument(help="Tracker JSON (plain/gzip), OSV dir/zip/file, or a URL.")],
    kind: Annotated[
        str | None, typer.Option("--kind", help="debian-tracker or osv-debian (default: detect)")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import a vulnerability feed (replaces that feed's previous data atomically)."""
    from kiln.evidence.vulnimport import import_feed

    info = import_feed(open_store(data_dir), location, ConsoleMonitor(), kind=kind)
    console.print(f"imported {info.name}: {info.records} records, {info.vulnerabilities} vulnerabilities")


def vulndb_status(json_out: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Feeds in the vulnerability database, their record counts and import times."""
    from kiln.evidence.vulndb import VulnDb

    sources = VulnDb.open(open_store(data_dir)).sources()
    rows: list[dict[str, Any]] = [
        {
            "source": s.name,
            "location": s.location,
            "digest": s.digest,
            "records": s.records,
            "vulnerabilities": s.vulnerabilities,
            "imported": datetime.fromtimestamp(s.imported_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for s in sources
    ]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("the vulnerability database is empty: kiln vulndb import PATH|URL")
        return
    table = Table("source", "records", "vulnerabilities", "imported", "from", box=None)
    for r in rows:
        table.add_row(r["source"], str(r["records"]), str(r["vulnerabilities"]), r["imported"], r["location"])
    console.print(table)


def comply(
    image: Annotated[str, typer.Argument(help="Image (name, name@1.2.3, name@1.2.3/4) or a root directory.")],
    profile: Annotated[str, typer.Option("--profile", help="SSG profile (short or full id).")] = "standard",
    target: Annotated[Literal["container", "machine"], typer.Option("--target")] = "machine",
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Keep ARF, HTML and JSON here.")
    ] = None,
    json_out: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """OpenSCAP compliance of an image (ssg-debian content, Debian 12 derived at run time)."""
    from kiln.evidence.compliance import evaluate
    from kiln.evidence.subject import resolve_image

    store = open_store(data_dir)
    with resolve_image(store, image) as resolved, store.scratch("comply-") as work:
        result, arf, html = evaluate(resolved.root, profile, target, work)
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(arf, output_dir / "arf.xml")
            shutil.copy(html, output_dir / "report.html")
            (output_dir / "results.json").write_bytes(result.to_json())
    if json_out:
        print_json(json.loads(result.to_json()))
        return
    s = result.summary()
    console.print(f"content: {result.content.source} (SSG {result.content.ssg_version})")
    for note in result.content.adaptations:
        console.print(f"  adapted: {note}")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    console.print(
        f"profile {s['profile']} ({target}): score {s['score']}% — "
        + ", ".join(f"{k} {v}" for k, v in s["counts"].items())
    )
    if s["oscap_score"] != s["score"]:
        console.print(
            f"  oscap's own score {s['oscap_score']}%, counting rules only a running system can decide"
        )
    for rule in result.rules:
        if rule["result"] == "notchecked":
            console.print(f"  [yellow]notchecked[/] {rule['title'] or rule['id']} ({rule['reason']})")
        elif rule["result"] not in ("pass", "notapplicable"):
            console.print(f"  [red]{rule['result']}[/] {rule['title'] or rule['id']}")


def keys_generate(
    path: Annotated[
        Path, typer.Argument(help="Private key file to create (the public key goes to PATH.pub).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key.")] = False,
) -> None:
    """Create an ed25519 signing key pair (private key mode 0600)."""
    from kiln.evidence.signing import generate_key

    pair = generate_key(path.expanduser(), force=force)
    console.print(
        f"private key: {pair.private} (mode 600)\npublic key:  {pair.public}\nkey id:      {pair.key_id}"
    )


def verify(
    image: Annotated[str, typer.Argument(help="Image: name, name@1.2.3 or name@1.2.3/4.")],
    key: Annotated[Path, typer.Option("--key", help="Public key (or the private key file).")],
    json_out: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Check the signature, artifacts, evidence and kept documents, and the catalog against the provenance.

    Every catalogued field the signed provenance covers is compared; every difference is reported.
    """
    from kiln.catalog import Catalog
    from kiln.evidence.provenancecheck import CatalogEntry, VerificationFailed, run_checks
    from kiln.evidence.signing import load_public_key
    from kiln.evidence.subject import artifact_path
    from kiln.models import Package

    public = load_public_key(key.expanduser())  # a bad key path is a usage error, before the catalog
    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        record = catalog.get_image(image)
        packages = [
            Package(
                name=p.name,
                version=p.version,
                architecture=p.architecture,
                source=p.source,
                source_version=p.source_version,
            )
            for p in catalog.packages(record.ref)
        ]
        lock = catalog.lock(record.ref)
    envelopes = [e for e in record.evidence if e.kind == "provenance-signed"]
    if not envelopes:
        raise KilnError(
            f"{image}: no signed provenance recorded",
            hint="set signing.key in the recipe (kiln keys generate PATH) and rebuild",
        )
    blob = store.blob_path(envelopes[0].digest)
    if not blob.is_file():
        raise VerificationFailed(f"{image}: provenance blob {envelopes[0].digest} is missing from the store")
    checks = run_checks(
        blob.read_bytes(),
        public,
        base=None,
        store=store,
        layouts=[artifact_path(store, a.path) for a in record.artifacts],
        catalog=CatalogEntry(record, packages, lock),
    )
    failed = any(not c.ok for c in checks)
    if json_out:
        print_json([{"check": c.what, "ok": c.ok, "skipped": c.skipped, "detail": c.detail} for c in checks])
    else:
        for c in checks:
            if c.skipped:
                err_console.print(f"[yellow]warning:[/] {escape(c.what)}: {escape(c.detail)}")
            elif c.ok and not failed:
                console.print(f"[green]✓[/] {escape(c.what)}: {escape(c.detail)}", highlight=False)
    if failed:
        raise VerificationFailed.of(checks)
    if not json_out:
        console.print(f"[green]verified[/] {record.ref}: {len(checks)} checks passed")


def register(app: typer.Typer) -> None:
    app.command("sbom")(sbom)
    app.command("scan")(scan)
    app.command("comply")(comply)
    app.command("verify")(verify)
    vulndb = typer.Typer(help="The local vulnerability database.", no_args_is_help=True)
    vulndb.command("import")(vulndb_import)
    vulndb.command("status")(vulndb_status)
    app.add_typer(vulndb, name="vulndb")
    keys = typer.Typer(help="Signing keys for provenance.", no_args_is_help=True)
    keys.command("generate")(keys_generate)
    app.add_typer(keys, name="keys")
