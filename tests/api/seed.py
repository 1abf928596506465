"""A small catalog written directly (no build): images with packages, evidence blobs, artifacts and a
build log, for read-only API and web tests (and, scaled up, the API benchmark)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kiln.catalog import ArtifactRecord, Catalog, ComponentRecord, EvidenceRecord, NewImage, PackageRecord
from kiln.store import Store

CVE = "CVE-2024-5535"
FIXED = "3.0.14-1~deb12u1"
OPENSSL = "3.0.11-1~deb12u2"


@dataclass(frozen=True)
class Seeded:
    home: Path
    web: str  # web@1.0.0/1 (openssl, a CVE with a fix, compliance, artifacts)
    app: str  # app@2.0.0/1, built on web
    build_id: str
    log_path: Path


def _blob(store: Store, data: bytes) -> tuple[str, int]:
    (store.home / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=store.home / "tmp", delete=False) as fh:
        fh.write(data)
    return store.put_blob(Path(fh.name))


def _evidence(store: Store, kind: str, doc: object, summary: dict[str, object]) -> EvidenceRecord:
    digest, _ = _blob(store, json.dumps(doc, sort_keys=True).encode())
    return EvidenceRecord(kind=kind, path=f"blobs/{digest.replace(':', '/')}", digest=digest, summary=summary)


def scan_report(image: str) -> dict[str, object]:
    finding = {"vuln_id": CVE, "package": "openssl", "installed": OPENSSL, "fixed": FIXED,
               "severity": "high", "status": "fixable", "binaries": ["libssl3", "openssl"],
               "note": None, "description": "SSL_select_next_proto buffer overread"}  # fmt: skip
    return {"format": "kiln-scan/1", "image": image, "distro": "debian", "release": "12", "packages": 3,
            "sources": [], "summary": {"vulnerabilities": 1, "fixable": 1, "by_severity": {"high": 1}},
            "findings": [finding]}  # fmt: skip


COMPLIANCE = {"profile": "standard", "score": 87.5, "oscap_score": 80.0,
              "counts": {"pass": 7, "fail": 1}, "profile_id": "xccdf_org.ssgproject.content_profile_standard",
              "content": {"source": "ssg-debian", "ssg_version": "0.1.66", "adaptations": []},
              "rules": [{"id": "xccdf_rule_no_empty_passwords", "title": "Prevent empty passwords",
                         "result": "fail", "severity": "high", "reason": ""},
                        {"id": "xccdf_rule_sshd_disable_root", "title": "Disable SSH root login",
                         "result": "pass", "severity": "medium", "reason": ""}],
              "warnings": []}  # fmt: skip

PACKAGES = [
    PackageRecord(name="libssl3", version=OPENSSL, architecture="amd64", source="openssl", source_version=OPENSSL),
    PackageRecord(name="openssl", version=OPENSSL, architecture="amd64", source="openssl", source_version=OPENSSL),
    PackageRecord(name="bash", version="5.2.15-2+b7", architecture="amd64", source="bash", source_version="5.2.15-2"),
]  # fmt: skip


def log_lines(build_id: str) -> list[dict[str, object]]:
    t = 1_767_000_000.0
    return [
        {"kind": "start", "scope": "build", "message": "build web 1.0.0", "build": build_id, "time": t},
        {"kind": "start", "scope": "stage", "message": "parent", "time": t + 1},
        {"kind": "output", "scope": "step", "message": "Setting up openssl", "time": t + 2},
        {"kind": "end", "scope": "stage", "message": "parent", "status": "success", "duration": 2.0, "time": t + 3},
        {"kind": "end", "scope": "build", "message": "build web 1.0.0", "status": "success", "duration": 4.0, "time": t + 4},
    ]  # fmt: skip


def record_image(catalog: Catalog, store: Store, name: str, version: str, parent: str, *,
                 full: bool = True, provenance: dict[str, object] | None = None) -> tuple[str, str, Path]:  # fmt: skip
    """Record one succeeded build of ``name@version``: returns (ref, build id, log path)."""
    log = store.home / "logs" / f"{name}-{version}-{datetime.now(UTC):%H%M%S%f}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    build_id = catalog.start_build(recipe_name=name, recipe_version=version, recipe_path=f"/recipes/{name}.yaml",
                                   log_path=str(log))  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in log_lines(build_id)))
    artifacts: list[ArtifactRecord] = []
    evidence: list[EvidenceRecord] = []
    if full:
        out = store.output_dir(name, version, build_id)
        (out / "oci/blobs/sha256").mkdir(parents=True, exist_ok=True)
        (out / "oci/index.json").write_text('{"schemaVersion": 2, "manifests": []}\n')
        (out / "oci/blobs/sha256/abc").write_bytes(b"layer" * 100)
        tarball = out / f"{name}.rootfs.tar.gz"
        tarball.write_bytes(bytes(range(256)) * 40)
        artifacts = [
            ArtifactRecord(kind="oci", path=str(out / "oci"), digest="sha256:" + "1" * 64, size=600),
            ArtifactRecord(kind="rootfs", path=str(tarball), digest="sha256:" + "2" * 64, size=10240),
        ]
        ref = f"{name}@{version}"
        evidence = [
            _evidence(store, "sbom-spdx", {"spdxVersion": "SPDX-2.3", "name": ref}, {"packages": 3}),
            _evidence(store, "sbom-cyclonedx", {"bomFormat": "CycloneDX", "specVersion": "1.6"}, {"packages": 3}),
            _evidence(store, "vulnerability-report", scan_report(ref),
                      {"vulnerabilities": 1, "fixable": 1, "by_severity": {"high": 1}}),
            _evidence(store, "compliance-results", COMPLIANCE, {"score": 87.5, "profile": "standard"}),
        ]  # fmt: skip
        if provenance is not None:
            evidence.append(_evidence(store, "provenance-signed", provenance, {}))
    image = catalog.finish_build(
        build_id,
        NewImage(
            name=name, version=version, digest="sha256:" + f"{abs(hash((name, version))):064x}"[:64],
            created=datetime(2026, 11, 30, tzinfo=UTC), parent=parent, description=f"{name} image",
            size=123456, components=[ComponentRecord(name="motd", version="1.0.0", digest="sha256:" + "3" * 64,
                                                     parameters={"Message": "hi"})],
            artifacts=artifacts, evidence=evidence, packages=PACKAGES,
        ),
    )  # fmt: skip
    return image.ref, build_id, log


PIPELINE = "name: web-nightly\nrecipe: web.recipe.yaml\nschedule: cron(0 4 * * *)\ntimezone: Europe/Berlin\n" \
           "triggers: [manual, parent]\n"  # fmt: skip
RECIPE = (
    "name: web\nversion: 1.0.0\nparent: {image: 'debian:bookworm'}\ncomponents:\n  - path: greeting.yaml\n"
)
COMPONENT = """\
name: greeting
schemaVersion: 1.0
parameters:
  - Greeting: {type: string, default: hello, allowedValues: [hello, hi, moin]}
phases:
  - name: build
    steps:
      - name: Greet
        action: CreateFile
        inputs:
          - path: /etc/greeting
            content: "{{ Greeting }}"
"""


def seed_extras(catalog: Catalog, home: Path, web: str) -> None:
    """A label, a pipeline with a skipped scheduled run, and a promotion into dev: what the lifecycle,
    pipeline and channel endpoints read."""
    from kiln.catalog import promotions
    from kiln.catalog.labels import set_labels
    from kiln.pipelines.load import load_pipelines
    from kiln.pipelines.recipes import PipelineRecipes
    from kiln.pipelines.store import PipelineStore

    set_labels(catalog, web, {"team": "payments"})
    folder = home / "pipelines"
    folder.mkdir(exist_ok=True)
    (folder / "web.recipe.yaml").write_text(RECIPE)
    (folder / "greeting.yaml").write_text(COMPONENT)
    (folder / "web-nightly.yaml").write_text(PIPELINE)
    pipelines = PipelineStore(catalog)
    when = datetime(2026, 12, 1, 3, tzinfo=UTC)
    pipelines.apply(load_pipelines(folder / "web-nightly.yaml", PipelineRecipes(catalog)), when)
    pipelines.skip("web-nightly", "schedule", when.isoformat(), f"schedule:{when.isoformat()}", when,
                   "no parent, component or CVE changed since the last build")  # fmt: skip
    promotions.record(catalog, web, channel="dev", action="promote", allowed=True, decision={"rules": []},
                      envelope=None, who="seed", at=when)  # fmt: skip


def seed(home: Path) -> Seeded:
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog:
        web, build_id, log = record_image(catalog, store, "web", "1.0.0", "debian:bookworm")
        app, _, _ = record_image(catalog, store, "app", "2.0.0", web)
        seed_extras(catalog, home, web)
    return Seeded(home=home, web=web, app=app, build_id=build_id, log_path=log)
