"""``kiln sbom``, ``kiln scan``, ``kiln vulndb``, ``kiln comply``, ``kiln keys``, ``kiln verify``."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kiln.cli.common import DataDirOption, JsonOption, console, err_console, open_store, print_json, show
from kiln.cli.exitcodes import epilog
from kiln.errors import KilnError, UsageError
from kiln.evidence.gates import evaluate as evaluate_gate
from kiln.evidence.settings import AllowEntry, GateSeverity, ScanGate
from kiln.monitor import ConsoleMonitor
from kiln.readthrough import readable_blob
from kiln.store import Store

if TYPE_CHECKING:
    from kiln.catalog import ImageRecord
    from kiln.evidence.catalogcheck import Check
    from kiln.evidence.vulnscan import ScanReport

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


def _recorded_blob(store: Store, image: str, kind: str) -> Path | None:
    """The stored evidence file ``kind`` of catalogued image ``image``, if there is one."""
    from kiln.catalog import Catalog

    if Path(image).is_dir():
        return None
    with Catalog.open(store.database_url) as catalog:
        try:
            record = catalog.get_image(image)
        except KilnError:
            return None  # not a catalogued image: resolve_image explains
    found = [readable_blob(store, e.digest) for e in record.evidence if e.kind == kind]
    return found[0] if found and found[0].is_file() else None


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
    kind = "sbom-spdx" if fmt == "spdx" else "sbom-cyclonedx"
    kept = _recorded_blob(store, image, kind)
    if kept is not None:  # without unpacking the image (a retired one has no artifacts left)
        _emit(kept.read_bytes(), output)
        return
    with resolve_image(store, image) as resolved:
        recorded = [e for e in (resolved.record.evidence if resolved.record else []) if e.kind == kind]
        if recorded and readable_blob(store, recorded[0].digest).is_file():
            _emit(readable_blob(store, recorded[0].digest).read_bytes(), output)
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
    fail_on: Annotated[
        GateSeverity | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 if a finding of this severity or worse remains (the image recipe's scan.allow "
            "entries excepted).",
        ),
    ] = None,
    only_fixable: Annotated[
        bool, typer.Option("--only-fixable", help="With --fail-on: only findings with a fixed version count.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Match the image's packages against the local vulnerability database."""
    from kiln.evidence.scanexport import cyclonedx_vex, sarif
    from kiln.evidence.subject import resolve_image
    from kiln.evidence.vulndb import VulnDb
    from kiln.evidence.vulnscan import SCAN_FILES, scan_root

    if only_fixable and fail_on is None:
        raise typer.BadParameter("--only-fixable needs --fail-on SEVERITY", param_hint="'--only-fixable'")
    store = open_store(data_dir)
    db = VulnDb.open(store)
    db.require_data()  # before unpacking the image
    with resolve_image(store, image, only=SCAN_FILES) as resolved:
        result = scan_root(resolved.root, db, image=image)
    gate = ScanGate(
        fail_on=fail_on, only_fixable=only_fixable, allow=recipe_allow_list(store, resolved.record)
    )
    outcome = evaluate_gate(result, gate, date.today())
    if report is not None:
        report.write_bytes(result.to_json())
    if fmt == "json":
        _emit(result.to_json(), output)
    elif fmt == "cyclonedx-vex":
        _emit(cyclonedx_vex(result, resolved.identity.created), output)
    elif fmt == "sarif":
        _emit(sarif(result), output)
    else:
        _print_findings(result, {f.vuln_id: e for f, e in outcome.suppressed})
    if fail_on is None:
        return
    if outcome.failed:
        err_console.print(f"[red]{escape(outcome.message(gate))}[/]")
        raise typer.Exit(1)
    allowed = f" ({len(outcome.suppressed)} allow-listed)" if outcome.suppressed else ""
    err_console.print(f"[green]gate passed[/]: no finding of severity {fail_on} or worse{allowed}")


def recipe_allow_list(store: Store, record: ImageRecord | None) -> list[AllowEntry]:
    """The allow-list of the recipe a catalogued image was built from (recorded with its lock)."""
    if record is None:
        return []
    from kiln.catalog import Catalog

    with Catalog.open(store.database_url) as catalog:
        lock = catalog.lock(record.ref) or {}
    return ScanGate.model_validate(lock.get("scan") or {}).allow


def _print_findings(result: ScanReport, allowed: dict[str, AllowEntry]) -> None:
    table = Table("CVE", "package", "installed", "fixed", "severity", "status", box=None)
    for f in result.findings:
        note = f" ({f.note})" if f.note else ""
        entry = allowed.get(f.vuln_id)
        if entry is not None:
            note += f" [allowed until {entry.expires}: {entry.reason}]"
        severity = Text(f.severity, style=SEVERITY_STYLE.get(f.severity, ""))
        table.add_row(f.vuln_id, f.package, f.installed, f.fixed or "-", severity, Text(f.status + note))
    show(table)
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
    from kiln.catalog import Catalog
    from kiln.events.cve import import_with_events
    from kiln.pipelines.cvetrigger import evaluate_all

    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        info, found = import_with_events(store, catalog, location, ConsoleMonitor(), kind=kind)
        queued, skipped = evaluate_all(store, catalog, datetime.now(UTC))
    console.print(f"imported {info.name}: {info.records} records, {info.vulnerabilities} vulnerabilities")
    if found:
        console.print(f"{len(found)} new (image, vulnerability) pairs affect active images: see kiln events")
    for run in queued:
        console.print(f"queued run {run.id} of pipeline {run.pipeline} (refresh): {run.trigger.cause}")
    for run in skipped:
        console.print(f"pipeline {run.pipeline}: not rebuilt: {run.reason}")


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
    show(table)


def comply(
    image: Annotated[str, typer.Argument(help="Image (name, name@1.2.3, name@1.2.3/4) or a root directory.")],
    profile: Annotated[str, typer.Option("--profile", help="SSG profile (short or full id).")] = "standard",
    target: Annotated[
        Literal["auto", "container", "machine"],
        typer.Option(
            "--target",
            help="The view: container (machine-only rules not applicable) or machine; auto, as in a "
            "recipe's compliance gate: machine for an image with a disk (a root with a kernel), "
            "else container.",
        ),
    ] = "auto",
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Keep ARF, HTML and JSON here.")
    ] = None,
    json_out: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """OpenSCAP compliance of an image (ssg-debian content, Debian 12 derived at run time)."""
    from kiln.evidence.compliance import VIEWS, auto_target, evaluate
    from kiln.evidence.subject import resolve_image

    store = open_store(data_dir)
    with resolve_image(store, image) as resolved, store.scratch("comply-") as work:
        view = auto_target(_boots(resolved.record, resolved.root)) if target == "auto" else target
        result, arf, html = evaluate(resolved.root, profile, view, work)
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
        f"profile {s['profile']}, {view} view: score {s['score']}% — "
        + ", ".join(f"{k} {v}" for k, v in s["counts"].items())
    )
    other = "machine" if view == "container" else "container"
    console.print(f"  {VIEWS[view]} (--target {other} for the other view)")
    if s["oscap_score"] != s["score"]:
        console.print(
            f"  oscap's own score {s['oscap_score']}%, counting rules only a running system can decide"
        )
    for rule in result.rules:
        if rule["result"] == "notchecked":
            console.print(f"  [yellow]notchecked[/] {rule['title'] or rule['id']} ({rule['reason']})")
        elif rule["result"] not in ("pass", "notapplicable"):
            console.print(f"  [red]{rule['result']}[/] {rule['title'] or rule['id']}")


def _boots(record: ImageRecord | None, root: Path) -> bool:
    """A catalogued image with a disk output, or a root directory with a kernel."""
    from kiln.evidence.facts import DISK_KINDS

    if record is not None:
        return any(a.kind in DISK_KINDS for a in record.artifacts)
    return any((root / "boot").glob("vmlinuz*"))


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
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Public key (or the private key file); needed for a signed image."),
    ] = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="An unsigned image fails (exit 1).")
    ] = False,
    json_out: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Check the signature, artifacts, evidence and kept documents, and the catalog against the provenance.

    Every catalogued field the provenance covers is compared; every difference is reported. An unsigned
    image gets every check but the signature, and is reported as not signed.
    """
    report: dict[str, Any] = {"image": image, "verified": False, "signed": None, "checks": [], "error": None}
    try:
        checks = _verify(image, key, require_signature, report, data_dir)
    except KilnError as exc:
        if json_out:
            print_json(report | {"error": exc.message, "hint": exc.hint})
        raise
    if json_out:
        print_json(report | {"verified": True})
        return
    for c in checks:
        if c.skipped:
            err_console.print(f"[yellow]warning:[/] {escape(c.what)}: {escape(c.detail)}")
        else:
            console.print(f"[green]✓[/] {escape(c.what)}: {escape(c.detail)}", highlight=False)
    signed = "" if report["signed"] else " (not signed)"
    if report.get("retired"):
        from kiln.evidence.provenancecheck import RETIRED

        console.print(f"{report['image']} is {RETIRED}; its SBOMs, provenance and evidence remain")
    console.print(f"[green]verified[/] {report['image']}: {len(checks)} checks passed{signed}")


def _verify(
    image: str, key: Path | None, require_signature: bool, report: dict[str, Any], data_dir: Path | None
) -> list[Check]:
    """The checks of ``kiln verify`` (filling ``report`` as it goes); VerificationFailed if any fails."""
    from kiln.catalog import Catalog
    from kiln.evidence.provenancecheck import CatalogEntry, VerificationFailed, run_checks
    from kiln.evidence.signing import load_public_key
    from kiln.readthrough import readable_artifact

    # a bad key path is a usage error, found before the catalog is opened
    public = load_public_key(key.expanduser()) if key is not None else None
    store = open_store(data_dir)
    with Catalog.open(store.database_url) as catalog:
        record = catalog.get_image(image)
        packages = catalog.packages(record.ref)
        lock = catalog.lock(record.ref)
    report["image"] = record.ref
    signed = [e for e in record.evidence if e.kind == "provenance-signed"]
    unsigned = [e for e in record.evidence if e.kind == "provenance"]
    report["signed"] = bool(signed)
    report["retired"] = record.state == "retired"
    if not signed and not unsigned:
        raise VerificationFailed(f"{record.ref}: no provenance recorded")
    if signed and public is None:
        raise UsageError(
            f"{record.ref} is signed: --key is needed to verify it",
            hint="kiln verify IMAGE --key PUBLIC_KEY (kiln keys generate wrote it as PATH.pub)",
        )
    provenance = (signed or unsigned)[0]
    blob = readable_blob(store, provenance.digest)
    if not blob.is_file():
        raise VerificationFailed(
            f"{record.ref}: provenance blob {provenance.digest} is missing from the store"
        )
    checks = run_checks(
        blob.read_bytes(),
        public if signed else None,
        base=None,
        store=store,
        layouts=[
            store.artifact_path(a.path) if record.state == "retired" else readable_artifact(store, a)
            for a in record.artifacts
        ],
        catalog=CatalogEntry(record, packages, lock),
        artifacts_deleted=record.state == "retired",
    )
    report["checks"] = [
        {"check": c.what, "ok": c.ok, "skipped": c.skipped, "detail": c.detail} for c in checks
    ]
    if any(not c.ok for c in checks):
        raise VerificationFailed.of(checks)
    if not signed and require_signature:
        raise VerificationFailed(
            f"{record.ref} is not signed (--require-signature); every other check passed",
            hint="set signing.key in the recipe (kiln keys generate PATH) and rebuild",
        )
    return checks


def register(app: typer.Typer) -> None:
    for name, command in (("sbom", sbom), ("scan", scan), ("comply", comply), ("verify", verify)):
        app.command(name, epilog=epilog(name))(command)
    vulndb = typer.Typer(
        help="The local vulnerability database.", no_args_is_help=True, epilog=epilog("vulndb")
    )
    vulndb.command("import")(vulndb_import)
    vulndb.command("status")(vulndb_status)
    app.add_typer(vulndb, name="vulndb")
    keys = typer.Typer(help="Signing keys for provenance.", no_args_is_help=True, epilog=epilog("keys"))
    keys.command("generate")(keys_generate)
    app.add_typer(keys, name="keys")
