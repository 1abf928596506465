"""`kiln sbom|scan|vulndb|comply|keys|verify` through the real Typer app."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import typer
from typer.testing import CliRunner

from kiln.catalog import Catalog
from kiln.catalog.schemas import ArtifactRecord, EvidenceRecord, NewImage
from kiln.evidence.collect import EvidenceSettings, ImageFacts, collect_evidence
from kiln.evidence.provenancecheck import VerificationFailed
from kiln.evidence.signing import SignatureInvalid
from kiln.models import Artifact
from kiln.monitor import ListMonitor
from kiln.store import Store
from tests.evidence.test_provenance import write_layout

runner = CliRunner()
TRACKER = "debian-security-tracker-json/vunnel-debian.json"


def test_keys_generate(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "generate", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in result.output and "key id:" in result.output


def test_vulndb_and_scan_of_a_directory(
    app: typer.Typer, home: Path, vuln_fixtures: Path, image_root: Path, tmp_path: Path
) -> None:
    empty = runner.invoke(app, ["vulndb", "status"])
    assert "empty" in empty.output
    imported = runner.invoke(app, ["vulndb", "import", str(vuln_fixtures / TRACKER)])
    assert imported.exit_code == 0 and "imported debian-tracker: 25 records" in imported.output
    status = json.loads(runner.invoke(app, ["vulndb", "status", "--json"]).output)
    assert status[0]["source"] == "debian-tracker" and status[0]["records"] == 25
    table = runner.invoke(app, ["scan", str(image_root), "--report", str(tmp_path / "r.json")])
    assert table.exit_code == 0, table.output
    assert "0 vulnerabilities (0 fixable) in" in table.output and "debian bookworm" in table.output
    assert json.loads((tmp_path / "r.json").read_text())["release"] == "bookworm"
    sarif = runner.invoke(app, ["scan", str(image_root), "-f", "sarif"])
    assert json.loads(sarif.output)["version"] == "2.1.0"


def test_sbom_of_a_directory_is_deterministic(app: typer.Typer, home: Path, image_root: Path) -> None:
    first = runner.invoke(app, ["sbom", str(image_root), "--format", "cyclonedx"])
    second = runner.invoke(app, ["sbom", str(image_root), "--format", "cyclonedx"])
    assert first.exit_code == 0 and first.output == second.output
    assert json.loads(first.output)["bomFormat"] == "CycloneDX"
    spdx = runner.invoke(app, ["sbom", str(image_root)])
    assert json.loads(spdx.output)["spdxVersion"] == "SPDX-2.3"


def test_comply_a_directory(app: typer.Typer, home: Path, image_root: Path, tmp_path: Path) -> None:
    argv = ["comply", str(image_root), "--target", "machine", "--json", "--output-dir", str(tmp_path / "out")]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["profile"] == "standard" and 0 < doc["score"] < 100
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"arf.xml", "report.html", "results.json"}


def test_verify_a_catalogued_image(app: typer.Typer, home: Path, tmp_path: Path) -> None:
    store = Store.open(home)
    image_dir = store.image_dir("web", "1.0.0")
    layout, digest = write_layout(image_dir / "oci")
    assert runner.invoke(app, ["keys", "generate", str(tmp_path / "k")]).exit_code == 0
    t = datetime(2026, 11, 23, tzinfo=UTC)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: web\n")
    facts = ImageFacts(
        "web",
        "1.0.0/1",
        digest,
        t,
        [Artifact(kind="oci", path=str(layout), digest=digest, size=1)],
        recipe,
        "sha256:" + hashlib.sha256(recipe.read_bytes()).hexdigest(),
        [],
        "debian:bookworm",
        "k",
        None,
        [],
        [],
        t,
        t,
        image_dir=image_dir,
    )
    files = collect_evidence(
        tmp_path, facts, EvidenceSettings(sbom=False, signing_key=tmp_path / "k"), store, ListMonitor()
    )
    with Catalog.open(store.database_url) as catalog:
        build = catalog.start_build(
            recipe_name="web",
            recipe_version="1.0.0",
            recipe_path=str(recipe),
            log_path=str(store.log_path("b")),
        )
        catalog.finish_build(
            build,
            NewImage(
                name="web",
                version="1.0.0",
                digest=digest,
                created=t,
                parent="debian:bookworm",
                recipe_digest=facts.recipe_digest,
                artifacts=[ArtifactRecord(kind="oci", path=str(layout), digest=digest, size=1)],
                evidence=[
                    EvidenceRecord(kind=f.kind, path=str(f.path), digest=f.digest, summary=f.summary)
                    for f in files
                ],
            ),
        )
    ok = runner.invoke(app, ["verify", "web@1.0.0/1", "--key", str(tmp_path / "k.pub")])
    assert ok.exit_code == 0, ok.output
    assert "verified web@1.0.0/1" in ok.output
    assert runner.invoke(app, ["keys", "generate", str(tmp_path / "other")]).exit_code == 0
    wrong = runner.invoke(app, ["verify", "web", "--key", str(tmp_path / "other.pub")])
    assert isinstance(wrong.exception, SignatureInvalid)
    layer = max((layout / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    layer.write_bytes(b"X" + layer.read_bytes()[1:])
    tampered = runner.invoke(app, ["verify", "web", "--key", str(tmp_path / "k.pub")])
    assert isinstance(tampered.exception, VerificationFailed)
    assert "does not match its digest" in str(tampered.exception)
