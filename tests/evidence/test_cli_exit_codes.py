"""Exit codes a CI job can use: `kiln scan --fail-on` (with the image recipe's allow-list), `kiln
verify` of signed and unsigned images, `--json` on failure, tables not cut when piped."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kiln.catalog import ArtifactRecord, Catalog, EvidenceRecord, NewImage
from kiln.errors import KilnError
from kiln.evidence.collect import EvidenceSettings, ImageFacts, collect_evidence
from kiln.evidence.vulnimport import import_feed
from kiln.evidence.vulnscan import installed_sources
from kiln.models import Artifact
from kiln.monitor import ListMonitor
from kiln.store import Store
from tests.evidence.synthetic import tracker_for
from tests.evidence.test_provenance import write_layout

runner = CliRunner()
ALLOW = {
    "fail_on": "high",
    "allow": [{"cve": "CVE-1999-90001", "reason": "no setuid binaries", "expires": "2099-12-31"}],
}


def scan_layout(root: Path, dest: Path) -> tuple[Path, str]:
    """An OCI layout of one layer holding what a scan reads (dpkg status, os-release) from ``root``."""
    blobs = dest / "blobs/sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for rel in ("var/lib/dpkg/status", "usr/lib/os-release"):
            tar.add(root / rel, arcname=rel)
    layer = blob(gzip.compress(raw.getvalue(), mtime=0))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    config = blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = blob(json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode())
    manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return dest, str(manifest["digest"])


def record(store: Store, name: str, artifacts: list[ArtifactRecord], digest: str, **extra: object) -> str:
    with Catalog.open(store.database_url) as catalog:
        build = catalog.start_build(
            recipe_name=name, recipe_version="1.0.0", recipe_path="r.yaml", log_path=str(store.log_path(name))
        )
        image = NewImage(name=name, version="1.0.0", digest=digest, created=datetime(2026, 11, 23, tzinfo=UTC),
                         parent="debian:bookworm", artifacts=artifacts, **extra)  # type: ignore[arg-type]  # fmt: skip
        return catalog.finish_build(build, image).ref


@pytest.fixture
def vulnerable(home: Path, image_root: Path, tmp_path: Path) -> Store:
    """A data dir whose vulnerability database flags the test root (glibc: fixable high, zlib: fixable
    medium), holding the image `web` of that root, built from a recipe that allow-lists the glibc CVE."""
    store = Store.open(home)
    _, sources = installed_sources(image_root)
    feed = tmp_path / "tracker.json"
    feed.write_text(json.dumps(tracker_for({k: v[0] for k, v in sources.items()})))
    import_feed(store, str(feed), ListMonitor())
    layout, digest = scan_layout(image_root, store.image_dir("web", "1.0.0") / "oci")
    oci = ArtifactRecord(kind="oci", path=str(layout), digest=digest, size=1)
    record(store, "web", [oci], digest, lock={"scan": ALLOW})
    return store


@pytest.mark.parametrize(
    ("args", "code", "failing"),
    [
        (["--fail-on", "high"], 1, {"CVE-1999-90001"}),
        (["--fail-on", "critical"], 0, set()),
        (["--fail-on", "medium", "--only-fixable"], 1, {"CVE-1999-90001", "CVE-1999-90007"}),
        (["--fail-on", "low"], 1, {"CVE-1999-90001", "CVE-1999-90007", "CVE-1999-90004"}),
        ([], 0, set()),
    ],
)
def test_scan_of_a_directory_exits_1_on_findings(
    app: typer.Typer, vulnerable: Store, image_root: Path, args: list[str], code: int, failing: set[str]
) -> None:
    result = runner.invoke(app, ["scan", str(image_root), *args])
    assert result.exit_code == code, result.output
    gate_lines = [line for line in result.stderr.splitlines() if line.startswith("  CVE-")]
    assert {line.split()[0] for line in gate_lines} == failing
    if args and not failing:
        assert "gate passed" in result.stderr


def test_scan_of_an_image_honours_its_recipe_allow_list(app: typer.Typer, vulnerable: Store) -> None:
    allowed = runner.invoke(app, ["scan", "web@1.0.0", "--fail-on", "high"])
    assert allowed.exit_code == 0, allowed.output
    assert "gate passed" in allowed.stderr and "(1 allow-listed)" in allowed.stderr
    row = next(line for line in allowed.stdout.splitlines() if line.startswith("CVE-1999-90001"))
    assert "allowed until 2099-12-31: no setuid binaries" in row
    medium = runner.invoke(app, ["scan", "web", "--fail-on", "medium", "--only-fixable", "-f", "json"])
    assert medium.exit_code == 1
    assert json.loads(medium.stdout)["summary"]["fixable"] == 2  # the report is printed on failure too
    assert "CVE-1999-90007" in medium.stderr and "CVE-1999-90001  glibc" not in medium.stderr


def test_expired_allow_list_entries_stop_suppressing(app: typer.Typer, vulnerable: Store) -> None:
    with Catalog.open(vulnerable.database_url) as catalog:
        (row,) = catalog.list_images("web")
    expired = {**ALLOW, "allow": [{**ALLOW["allow"][0], "expires": str(date.today() - timedelta(days=1))}]}  # type: ignore[dict-item]
    layout = Path(row.artifacts[0].path)
    record(vulnerable, "web", [ArtifactRecord(kind="oci", path=str(layout), digest=row.digest, size=1)],
           row.digest, lock={"scan": expired})  # fmt: skip
    result = runner.invoke(app, ["scan", "web@1.0.0/2", "--fail-on", "high"])
    assert result.exit_code == 1 and "expired on" in result.stderr


def test_piped_tables_are_not_cut(app: typer.Typer, vulnerable: Store, vuln_fixtures: Path) -> None:
    feed = vuln_fixtures / "debian-security-tracker-json/vunnel-debian.json"
    assert runner.invoke(app, ["vulndb", "import", str(feed)]).exit_code == 0
    status = runner.invoke(app, ["vulndb", "status"])
    row = next(line for line in status.stdout.splitlines() if line.startswith("debian-tracker"))
    assert len(row) > 80 and row.split()[-1] == str(feed)  # the whole location, on its row


def signed_or_not(store: Store, tmp_path: Path, name: str, key: Path | None) -> None:
    image_dir = store.image_dir(name, "1.0.0")
    layout, digest = write_layout(image_dir / "oci")
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(f"name: {name}\n")
    t = datetime(2026, 11, 23, tzinfo=UTC)
    facts = ImageFacts(name, "1.0.0/1", digest, t, [Artifact(kind="oci", path=str(layout), digest=digest, size=1)],
                       recipe, "sha256:" + hashlib.sha256(recipe.read_bytes()).hexdigest(), [],
                       "debian:bookworm", "k", None, [], [], t, t, image_dir=image_dir)  # fmt: skip
    files = collect_evidence(
        tmp_path, facts, EvidenceSettings(sbom=False, signing_key=key), store, ListMonitor()
    )
    evidence = [
        EvidenceRecord(kind=f.kind, path=str(f.path), digest=f.digest, summary=f.summary) for f in files
    ]
    oci = ArtifactRecord(kind="oci", path=str(layout), digest=digest, size=1)
    record(store, name, [oci], digest, recipe_digest=facts.recipe_digest, evidence=evidence)


def test_verify_an_unsigned_image(app: typer.Typer, home: Path, tmp_path: Path) -> None:
    store = Store.open(home)
    signed_or_not(store, tmp_path, "plain", None)
    ok = runner.invoke(app, ["verify", "plain"])
    assert ok.exit_code == 0, ok.output
    assert "not signed" in ok.stderr and "verified plain@1.0.0/1" in ok.stdout and "(not signed)" in ok.stdout
    required = runner.invoke(app, ["verify", "plain", "--require-signature", "--json"])
    assert required.exit_code == 1
    report = json.loads(required.stdout)  # --json is printed on failure too
    assert report["verified"] is False and report["signed"] is False and "is not signed" in report["error"]
    assert report["checks"] and all(c["ok"] for c in report["checks"])
    layer = max(
        (store.image_dir("plain", "1.0.0") / "oci/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size
    )
    layer.write_bytes(b"X" + layer.read_bytes()[1:])
    tampered = runner.invoke(app, ["verify", "plain", "--json"])
    assert tampered.exit_code == 1
    failed = [c for c in json.loads(tampered.stdout)["checks"] if not c["ok"]]
    assert failed and "does not match its digest" in failed[0]["detail"]


def test_verify_a_signed_image_needs_a_key(app: typer.Typer, home: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["keys", "generate", str(tmp_path / "k")]).exit_code == 0
    signed_or_not(Store.open(home), tmp_path, "signed", tmp_path / "k")
    missing = runner.invoke(app, ["verify", "signed", "--json"])
    assert (
        isinstance(missing.exception, KilnError) and missing.exception.exit_code == 2
    )  # main() exits with it
    assert "--key is needed" in json.loads(missing.stdout)["error"]
    assert runner.invoke(app, ["verify", "signed", "--key", str(tmp_path / "k.pub")]).exit_code == 0
    assert runner.invoke(app, ["keys", "generate", str(tmp_path / "other")]).exit_code == 0
    wrong = runner.invoke(app, ["verify", "signed", "--key", str(tmp_path / "other.pub"), "--json"])
    assert wrong.exit_code == 1 and "does not verify" in json.loads(wrong.stdout)["error"]


def test_comply_unknown_profile_lists_the_available_ones(
    app: typer.Typer, home: Path, image_root: Path
) -> None:
    result = runner.invoke(app, ["comply", str(image_root), "--profile", "cis"])
    error = result.exception
    assert isinstance(error, KilnError) and error.exit_code == 2
    assert (
        "no profile 'cis'" in error.message and "available profiles: anssi_np_nt28_average" in error.message
    )
    assert "standard" in error.message and "comply-" not in error.message  # no scratch file named


def test_comply_names_its_view_and_defaults_like_the_gate(
    app: typer.Typer, home: Path, image_root: Path
) -> None:
    from kiln.evidence.compliance import auto_target

    human = runner.invoke(app, ["comply", str(image_root)])
    assert human.exit_code == 0, human.output
    assert "profile standard, container view: score" in human.stdout
    assert "--target machine for the other view" in human.stdout
    # the recipe gate's default ("auto") for an image without a disk is the same view
    assert auto_target(False) == "container" and auto_target(True) == "machine"
    machine = runner.invoke(app, ["comply", str(image_root), "--target", "machine", "--json"])
    assert json.loads(machine.stdout)["target"] == "machine"
