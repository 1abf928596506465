"""Provenance statement, DSSE signing and verification — including tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.evidence.collect import (
    ComponentFact,
    EvidenceSettings,
    ImageFacts,
    collect_evidence,
)
from kiln.evidence.provenance import (
    BUILD_TYPE,
    CATALOG_LOCK,
    PACKAGE_LIST,
    SLSA_PROVENANCE,
    STATEMENT_TYPE,
    statement,
)
from kiln.evidence.provenancecheck import VerificationFailed, verify_provenance
from kiln.evidence.signing import (
    SignatureInvalid,
    SigningKeyError,
    generate_key,
    load_private_key,
    load_public_key,
    open_envelope,
    pae,
    sign_envelope,
)
from kiln.models import Artifact, Package
from kiln.monitor import ListMonitor
from kiln.store import Store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def write_layout(root: Path) -> tuple[Path, str]:
    """A small but complete OCI layout (config + one layer + manifest); returns (layout, manifest digest)."""
    blobs = root / "blobs/sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"digest": f"sha256:{h}", "size": len(data)}

    layer = blob(b"layer-bytes" * 1000)
    config = blob(b'{"architecture":"amd64","os":"linux"}')
    manifest_bytes = json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode()
    manifest = blob(manifest_bytes)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return root, str(manifest["digest"])


@pytest.fixture
def image(tmp_path: Path) -> tuple[ImageFacts, Path]:
    image_dir = tmp_path / "images/web/1.0.0"
    layout, digest = write_layout(image_dir / "oci")
    disk = image_dir / "disk.qcow2"
    disk.write_bytes(b"QFI\xfb" + b"\0" * 4096)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: web\nversion: 1.0.0\n")
    facts = ImageFacts(
        name="web",
        version="1.0.0/1",
        digest=digest,
        created=T0,
        artifacts=[
            Artifact(kind="oci", path=str(layout), digest=digest, size=0),
            Artifact(
                kind="qcow2",
                path=str(disk),
                digest="sha256:" + hashlib.sha256(disk.read_bytes()).hexdigest(),
                size=disk.stat().st_size,
            ),
        ],
        recipe_path=recipe,
        recipe_digest="sha256:" + hashlib.sha256(recipe.read_bytes()).hexdigest(),
        components=[ComponentFact("update-os", "builtin", "sha256:" + "1" * 64, {})],
        parent="debian:bookworm",
        parent_key="f" * 64,
        parent_digest=None,
        debs=[
            {
                "name": "bash",
                "version": "5.2.15-2+b13",
                "architecture": "amd64",
                "sha256": "2" * 64,
                "filename": "bash_5.2.15-2+b13_amd64.deb",
            }
        ],
        sources=["deb http://deb.debian.org/debian bookworm main"],
        started=T0,
        finished=T0,
        build_id="b-1",
        image_dir=image_dir,
    )
    return facts, image_dir


def test_generate_key_permissions_and_refusals(tmp_path: Path) -> None:
    pair = generate_key(tmp_path / "keys/signing.key")
    assert stat.S_IMODE(pair.private.stat().st_mode) == 0o600
    assert b"PRIVATE" not in pair.public.read_bytes()
    assert pair.key_id.startswith("sha256:")
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key(pair.private)
    pair.private.chmod(0o644)
    with pytest.raises(SigningKeyError, match="mode 0644") as exc:
        load_private_key(pair.private)
    assert exc.value.hint == f"chmod 600 {pair.private}" and "PRIVATE KEY" not in str(exc.value)
    pair.private.chmod(0o600)
    load_private_key(pair.private)
    (tmp_path / "bad.key").write_text("not a key")
    (tmp_path / "bad.key").chmod(0o600)
    with pytest.raises(SigningKeyError, match="not an unencrypted PEM"):
        load_private_key(tmp_path / "bad.key")


def test_dsse_roundtrip_and_pae(tmp_path: Path) -> None:
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    pair = generate_key(tmp_path / "k")
    env = sign_envelope(b'{"x": 1}', load_private_key(pair.private))
    assert open_envelope(env, load_public_key(pair.public)) == ("application/vnd.in-toto+json", b'{"x": 1}')
    other = generate_key(tmp_path / "other")
    with pytest.raises(SignatureInvalid):
        open_envelope(env, load_public_key(other.public))
    with pytest.raises(SignatureInvalid, match="not a DSSE envelope"):
        open_envelope(b"{}", load_public_key(pair.public))


def _signed(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> tuple[bytes, Path]:
    facts, _ = image
    pair = generate_key(tmp_path / "signing.key")
    files = collect_evidence(
        tmp_path, facts, EvidenceSettings(sbom=False, signing_key=pair.private), store, ListMonitor()
    )
    (prov,) = [f for f in files if f.kind == "provenance-signed"]
    assert prov.summary == {"signature": "signed"}
    return prov.path.read_bytes(), pair.public


def test_statement_contents(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    _, payload = open_envelope(envelope, load_public_key(pub))
    stmt = json.loads(payload)
    assert stmt["_type"] == STATEMENT_TYPE and stmt["predicateType"] == SLSA_PROVENANCE
    facts = image[0]
    names = {s["name"]: s["digest"]["sha256"] for s in stmt["subject"]}
    assert names == {
        "web@1.0.0/1": facts.digest[7:],
        "oci": facts.digest[7:],
        "disk.qcow2": facts.artifacts[1].digest[7:],
    }
    build = stmt["predicate"]["buildDefinition"]
    deps = {d.get("name"): d for d in build["resolvedDependencies"]}
    assert base64.b64decode(deps["recipe"]["content"]) == facts.recipe_path.read_bytes()
    assert deps["bash_5.2.15-2+b13_amd64.deb"]["digest"] == {"sha256": "2" * 64}
    assert deps["bash_5.2.15-2+b13_amd64.deb"]["uri"].startswith("pkg:deb/debian/bash@")
    assert deps["update-os"]["digest"] == {"sha256": "1" * 64}
    assert any(d["uri"].startswith("deb http://deb.debian.org") for d in build["resolvedDependencies"])
    run = stmt["predicate"]["runDetails"]
    assert run["metadata"]["startedOn"] == "2026-11-23T12:00:00Z" and run["builder"]["version"]["kiln"]


def test_verify_intact(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    checks = verify_provenance(envelope, load_public_key(pub), base=image[1], store=store)
    assert all(c.ok for c in checks) and checks[0].what == "signature"
    assert {c.what for c in checks} >= {"signature", "oci", "disk.qcow2"}


def test_verify_detects_flipped_layer_byte(
    image: tuple[ImageFacts, Path], store: Store, tmp_path: Path
) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    layer = max((image[1] / "oci/blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    data[100] ^= 0x01
    layer.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="does not match its digest"):
        verify_provenance(envelope, load_public_key(pub), base=image[1], store=store)


def test_verify_detects_changed_disk(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    with open(image[1] / "disk.qcow2", "r+b") as fh:
        fh.seek(2000)
        fh.write(b"\x01")
    with pytest.raises(VerificationFailed, match=r"disk.qcow2: sha256:\w+ != signed"):
        verify_provenance(envelope, load_public_key(pub), base=image[1], store=store)


def test_verify_detects_edited_statement(
    image: tuple[ImageFacts, Path], store: Store, tmp_path: Path
) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    env = json.loads(envelope)
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["subject"][2]["digest"]["sha256"] = "0" * 64  # point the disk subject elsewhere
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_provenance(json.dumps(env).encode(), load_public_key(pub), base=image[1], store=store)


def test_verify_wrong_key(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> None:
    envelope, _ = _signed(image, store, tmp_path)
    stranger = generate_key(tmp_path / "stranger.key")
    with pytest.raises(SignatureInvalid):
        verify_provenance(envelope, load_public_key(stranger.public), base=image[1], store=store)


def test_verify_detects_altered_evidence(
    image: tuple[ImageFacts, Path], store: Store, tmp_path: Path
) -> None:
    facts, image_dir = image
    pair = generate_key(tmp_path / "signing.key")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\n")
    files = collect_evidence(root, facts, EvidenceSettings(signing_key=pair.private), store, ListMonitor())
    envelope = next(f for f in files if f.kind == "provenance-signed").path.read_bytes()
    sbom = next(f for f in files if f.kind == "sbom-spdx").path
    sbom.chmod(0o644)
    sbom.write_bytes(sbom.read_bytes().replace(b"SPDX-2.3", b"SPDX-2.2"))
    with pytest.raises(VerificationFailed, match="evidence sbom-spdx"):
        verify_provenance(envelope, load_public_key(pair.public), base=image_dir, store=store)


def test_unsigned_provenance_is_recorded(
    image: tuple[ImageFacts, Path], store: Store, tmp_path: Path
) -> None:
    monitor = ListMonitor()
    files = collect_evidence(tmp_path, image[0], EvidenceSettings(sbom=False), store, monitor)
    assert [f.kind for f in files] == ["provenance"]
    assert files[0].summary == {"signature": "unsigned"}
    assert json.loads(files[0].path.read_bytes())["_type"] == STATEMENT_TYPE
    assert any("not signed" in e.message for e in monitor.events if e.kind == "warning")


def test_verify_needs_the_oci_layout(image: tuple[ImageFacts, Path], store: Store, tmp_path: Path) -> None:
    envelope, pub = _signed(image, store, tmp_path)
    import shutil

    shutil.rmtree(image[1] / "oci")
    with pytest.raises(VerificationFailed, match="missing on disk") as exc:
        verify_provenance(envelope, load_public_key(pub), base=image[1], store=store)
    assert "no intact OCI layout" in str(exc.value)


def test_statement_records_what_the_catalog_indexes(image: tuple[ImageFacts, Path]) -> None:
    """Format v2: sizes, kept documents, the package list (inline) and the lock digest."""
    facts = replace(
        image[0],
        artifacts=[a.model_copy(update={"size": 123}) for a in image[0].artifacts],
        components=[image[0].components[0]._replace(document="components/component-00-aa.yaml")],
        tests=[ComponentFact("smoke", "local", "sha256:" + "3" * 64, {"Expect": "hi"}, "components/t.yaml")],
        packages=[
            Package(
                name="libssl3",
                version="3.0.11-1",
                architecture="amd64",
                source="openssl",
                source_version="3.0.11-1",
            ),
            Package(name="bash", version="5.2"),
        ],
        lock={"layers": ["k1"]},
        size=456,
    )
    stmt = statement(facts, [])
    assert stmt["predicate"]["buildDefinition"]["buildType"] == BUILD_TYPE
    assert {s["name"]: s["annotations"].get("size") for s in stmt["subject"]} == {
        "web@1.0.0/1": 456,
        "oci": 123,
        "disk.qcow2": 123,
    }
    deps = {d["uri"]: d for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["kiln:component/update-os@builtin"]["annotations"]["document"] == (
        "components/component-00-aa.yaml"
    )
    assert deps["kiln:test/smoke@local"]["annotations"] == {
        "parameters": {"Expect": "hi"},
        "role": "test",
        "document": "components/t.yaml",
    }
    byproducts = {b["name"]: b for b in stmt["predicate"]["runDetails"]["byproducts"]}
    listed = base64.b64decode(byproducts[PACKAGE_LIST]["content"])
    assert json.loads(listed)["rows"] == [
        ["bash", "", "5.2", "bash", "5.2"],  # source fields default to the binary's, as catalogued
        ["libssl3", "amd64", "3.0.11-1", "openssl", "3.0.11-1"],
    ]
    assert byproducts[PACKAGE_LIST]["digest"]["sha256"] == hashlib.sha256(listed).hexdigest()
    assert byproducts[PACKAGE_LIST]["annotations"] == {"count": 2}
    lock = hashlib.sha256(b'{"layers":["k1"]}').hexdigest()
    assert byproducts[CATALOG_LOCK]["digest"]["sha256"] == lock
