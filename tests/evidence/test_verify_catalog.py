"""`kiln verify` checks the catalog record against the signed provenance.

One small real image is built once (real CLI, signed provenance, a component with a parameter and
a test document); each test tampers with a private copy of its data dir the way an attacker with
write access would (raw SQL through the ``sqlite3`` module, or editing a kept document) and runs the
real ``kiln verify``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.catalog import Catalog
from kiln.evidence.provenance import BUILD_TYPE_V1, CATALOG_LOCK, PACKAGE_LIST
from kiln.evidence.provenancecheck import CatalogEntry, run_checks
from kiln.evidence.signing import (
    generate_key,
    load_private_key,
    load_public_key,
    open_envelope,
    sign_envelope,
)
from kiln.store import Store
from tests.cli_runner import KilnRun, kiln
from tests.documents import create_file_component

pytestmark = pytest.mark.e2e

FAKE = "sha256:" + "e" * 64
SIGNED = "in the signed provenance"

COMPONENT = create_file_component(
    "{{ Message }}\n",
    overwrite=True,
    parameters={"Message": "hello"},
    check="grep -qx '{{ Message }}' /etc/motd",
)

RECIPE = """\
name: tiny
version: 1.0.0
parent: {image: "debian:bookworm"}
components:
  - path: motd.yaml
    parameters: {Message: signed motd}
tests:
  - path: motd.yaml
    parameters: {Message: signed motd}
signing: {key: signing.key}
settings: {network: false}
"""


@dataclass(frozen=True)
class Built:
    home: Path
    key: Path  # the private key (verify takes either half)
    image: dict[str, Any]  # the image record from `kiln build --json`
    bash: str  # bash's version as catalogued


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("verify-catalog")
    (work / "motd.yaml").write_text(COMPONENT)
    (work / "recipe.yaml").write_text(RECIPE)
    pair = generate_key(work / "signing.key")
    home = work / "home"
    result = kiln("build", str(work / "recipe.yaml"), "--json", home=home)
    with sqlite3.connect(home / "catalog.db") as db:
        (bash,) = db.execute("SELECT version FROM image_packages WHERE name = 'bash'").fetchone()
    return Built(home, pair.private, result.json()["image"], bash)


def copy_home(built: Built, dest: Path) -> Path:
    """A private copy of the data dir: files hard-linked (tests replace them, never write through a
    link), the catalog copied with sqlite's backup API and its absolute paths moved to the copy."""
    subprocess.run(["cp", "-al", str(built.home), str(dest)], check=True)
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (dest / name).unlink(missing_ok=True)
    with sqlite3.connect(built.home / "catalog.db") as src, sqlite3.connect(dest / "catalog.db") as dst:
        src.backup(dst)
    with sqlite3.connect(dest / "catalog.db") as db:
        for table, column in (
            ("image_artifacts", "path"),
            ("image_evidence", "path"),
            ("builds", "log_path"),
        ):
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(built.home), str(dest)))
    return dest


def tamper(home: Path, *statements: str) -> None:
    with sqlite3.connect(home / "catalog.db") as db:
        for sql in statements:
            assert db.execute(sql).rowcount >= 1, sql


def verify(built: Built, home: Path, *extra: str) -> KilnRun:
    result = kiln("verify", "tiny@1.0.0", "--key", str(built.key), *extra, home=home, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_untouched_copy_verifies_every_part(built: Built, tmp_path: Path) -> None:
    home = copy_home(built, tmp_path / "home")
    result = verify(built, home, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert all(c["ok"] and not c["skipped"] for c in checks.values()), checks
    for part in ("image", "artifacts", "evidence", "components", "packages", "lock"):
        assert f"catalog {part}" in checks
    documents = [name for name in checks if name.endswith("document") or " document " in name]
    assert {d.split()[0] for d in documents} == {"component", "test"}
    human = verify(built, home)
    assert human.returncode == 0 and "verified tiny@1.0.0/1" in human.stdout


def _sql_cases(built: Built) -> list[tuple[str, list[str], str]]:
    image = built.image
    oci = next(a for a in image["artifacts"] if a["kind"] == "oci")
    sbom = next(e for e in image["evidence"] if e["kind"] == "sbom-spdx")
    return [
        (
            "image-digest",
            [f"UPDATE images SET digest = '{FAKE}'"],
            f"catalog image.digest: {FAKE} in the catalog, {image['digest']} {SIGNED}",
        ),
        (
            "artifact-digest",
            [f"UPDATE image_artifacts SET digest = '{FAKE}' WHERE kind = 'oci'"],
            f"catalog artifacts[oci].digest: {FAKE} in the catalog, {oci['digest']} {SIGNED}",
        ),
        (
            "artifact-size",
            ["UPDATE image_artifacts SET size = 7 WHERE kind = 'oci'"],
            f"catalog artifacts[oci].size: 7 in the catalog, {oci['size']} {SIGNED}",
        ),
        (
            "artifact-path",
            ["UPDATE image_artifacts SET path = path || '2' WHERE kind = 'oci'"],
            f'catalog artifacts[oci].path: "{oci["path"]}2" in the catalog, "…/oci" {SIGNED}',
        ),
        (
            "evidence-digest",
            [f"UPDATE image_evidence SET digest = '{FAKE}' WHERE kind = 'sbom-spdx'"],
            f"catalog evidence[sbom-spdx].digest: {FAKE} in the catalog, {sbom['digest']} {SIGNED}",
        ),
        (
            "evidence-summary",
            [
                "UPDATE image_evidence SET summary = json_set(summary, '$.packages', 3) WHERE kind = 'sbom-spdx'"
            ],
            f"catalog evidence[sbom-spdx].summary.packages: 3 in the catalog, "
            f"{sbom['summary']['packages']} {SIGNED}",
        ),
        (
            "package-version",
            ["UPDATE image_packages SET version = '9:9.9-9' WHERE name = 'bash'"],
            f'catalog packages[bash:amd64].version: "9:9.9-9" in the catalog, "{built.bash}" {SIGNED}',
        ),
        (
            "package-deleted",
            ["DELETE FROM image_packages WHERE name = 'bash'"],
            f"catalog packages[bash:amd64]: {SIGNED}, not in the catalog",
        ),
        (
            "component-parameter",
            ["UPDATE image_components SET parameters = json_set(parameters, '$.Message', 'evil')"],
            f'catalog components[motd].parameters.Message: "evil" in the catalog, "signed motd" {SIGNED}',
        ),
        (
            "component-digest",
            [f"UPDATE image_components SET digest = '{FAKE}'"],
            f"catalog components[motd].digest: {FAKE} in the catalog",
        ),
        (
            "lock",
            ["UPDATE images SET lock = json_set(lock, '$.components[0].digest', 'sha256:00')"],
            "catalog lock (resolved inputs) digest:",
        ),
    ]


CASES = [
    "image-digest",
    "artifact-digest",
    "artifact-size",
    "artifact-path",
    "evidence-digest",
    "evidence-summary",
    "package-version",
    "package-deleted",
    "component-parameter",
    "component-digest",
    "lock",
]


@pytest.mark.parametrize("case", CASES)
def test_edited_catalog_row_fails_and_names_the_field(built: Built, tmp_path: Path, case: str) -> None:
    ((_, statements, expected),) = [c for c in _sql_cases(built) if c[0] == case]
    home = copy_home(built, tmp_path / "home")
    tamper(home, *statements)
    result = verify(built, home)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = expected.replace(str(built.home), str(home))  # catalogued paths moved with the copy
    assert expected in result.stderr, result.stderr


def test_edited_kept_document_fails(built: Built, tmp_path: Path) -> None:
    home = copy_home(built, tmp_path / "home")
    (doc,) = (home / "images/tiny").glob("*/components/component-00-*.yaml")
    text = doc.read_text()
    doc.unlink()  # the copy's file is a hard link to the original: replace it, never write through
    doc.write_text(text.replace("grep -qx", "true ||"))
    result = verify(built, home)
    assert result.returncode == 1
    rel = doc.relative_to(doc.parents[1])
    signed = next(c for c in built.image["components"] if c["name"] == "motd")["digest"]
    assert f"component document {rel} (motd): sha256:" in result.stderr
    assert f"on disk, {signed} {SIGNED}" in result.stderr
    assert "test document" not in result.stderr  # its own copy is intact
    assert (built.home / doc.relative_to(home)).read_text() == text  # the original is untouched


def test_every_difference_is_reported_at_once(built: Built, tmp_path: Path) -> None:
    cases = _sql_cases(built)
    home = copy_home(built, tmp_path / "home")
    wanted = ("image-digest", "evidence-digest", "package-version", "component-parameter")
    for name, statements, _ in cases:
        if name in wanted:
            tamper(home, *statements)
    result = verify(built, home, "--json")
    assert result.returncode == 1
    failed = [c["check"] for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert failed == [
        "catalog image.digest",
        "catalog evidence[sbom-spdx].digest",
        "catalog components[motd].parameters.Message",
        "catalog packages",
        "catalog packages[bash:amd64].version",
    ]
    assert "verification failed (5 of" in result.stderr


def _as_v1(payload: bytes) -> bytes:
    """The statement as format v1 wrote it: no package list, lock digest, sizes, summaries or
    kept documents."""
    stmt = json.loads(payload)
    build, run = stmt["predicate"]["buildDefinition"], stmt["predicate"]["runDetails"]
    build["buildType"] = BUILD_TYPE_V1
    for subject in stmt["subject"]:
        subject["annotations"].pop("size", None)
    build["resolvedDependencies"] = [
        d for d in build["resolvedDependencies"] if not str(d.get("uri")).startswith("kiln:test/")
    ]
    for dep in build["resolvedDependencies"]:
        if "parameters" in dep.get("annotations", {}):
            dep["annotations"] = {"parameters": dep["annotations"]["parameters"]}
    run["byproducts"] = [
        {k: v for k, v in b.items() if k != "annotations"}
        for b in run["byproducts"]
        if b["name"] not in (PACKAGE_LIST, CATALOG_LOCK)
    ]
    return json.dumps(stmt).encode()


def test_v1_provenance_verifies_and_says_what_it_does_not_cover(built: Built) -> None:
    store = Store.open(built.home)
    with Catalog.open(store.database_url) as catalog:
        record = catalog.get_image("tiny@1.0.0/1")
        packages = catalog.packages(record.ref)
        lock = catalog.lock(record.ref)
    envelope = store.blob_path(next(e.digest for e in record.evidence if e.kind == "provenance-signed"))
    _, payload = open_envelope(envelope.read_bytes(), load_public_key(built.key))
    old = sign_envelope(_as_v1(payload), load_private_key(built.key))
    layouts = [Path(a.path) for a in record.artifacts]
    entry = CatalogEntry(record, packages, lock)
    checks = run_checks(
        old, load_public_key(built.key), base=None, store=store, layouts=layouts, catalog=entry
    )
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    skipped = {c.what for c in checks if c.skipped}
    assert skipped == {
        "catalog packages",
        "catalog lock",
        "catalog component documents",
        "catalog sizes and evidence summaries",
    }
    assert all("format v1" in c.detail for c in checks if c.skipped)
    # What v1 does cover is still compared.
    tampered = CatalogEntry(record.model_copy(update={"digest": FAKE}), packages, lock)
    checks = run_checks(
        old, load_public_key(built.key), base=None, store=store, layouts=layouts, catalog=tampered
    )
    assert [c.what for c in checks if not c.ok] == ["catalog image.digest"]
