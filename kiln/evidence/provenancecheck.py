"""``kiln verify``: the provenance signature holds and every subject still matches what is on disk.

Checks: the DSSE signature with the given public key (fails if the statement was edited or signed
with another key); each subject (an OCI layout: manifest, config and every layer blob re-hashed;
a file: re-hashed); each byproduct (evidence blob in the store) re-hashed; and, given the catalog
record, every catalogued field the provenance covers plus the kept component documents
(:mod:`kiln.evidence.catalogcheck`). All differences are reported at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiln.errors import KilnError
from kiln.evidence.catalogcheck import CatalogEntry, Check, check_catalog, image_dir
from kiln.evidence.provenance import BUILD_TYPES, CATALOG_LOCK, PACKAGE_LIST, SLSA_PROVENANCE, STATEMENT_TYPE
from kiln.evidence.signing import IN_TOTO_PAYLOAD_TYPE, key_id, open_envelope
from kiln.readthrough import readable_blob
from kiln.store import Store, file_sha256

__all__ = ["RETIRED", "CatalogEntry", "Check", "VerificationFailed", "run_checks", "verify_provenance"]

RETIRED = "retired: artifacts deleted"


class VerificationFailed(KilnError):
    """The image's evidence does not verify."""

    @classmethod
    def of(cls, checks: list[Check]) -> VerificationFailed:
        failed = [c for c in checks if not c.ok]
        lines = "\n".join(f"  {c.what}: {c.detail}" for c in failed)
        return cls(f"verification failed ({len(failed)} of {len(checks)} checks):\n{lines}")


def _blob_ok(layout: Path, digest: str, size: int | None = None) -> str | None:
    algo, _, hexdigest = digest.partition(":")
    blob = layout / "blobs" / algo / hexdigest
    if algo != "sha256" or not blob.is_file():
        return f"blob {digest} missing"
    if size is not None and blob.stat().st_size != size:
        return f"blob {digest} has size {blob.stat().st_size}, manifest says {size}"
    if file_sha256(blob) != hexdigest:
        return f"blob {digest} content does not match its digest"
    return None


def check_oci_layout(layout: Path, manifest_digest: str) -> list[str]:
    """Problems found re-hashing the manifest, its config and every layer ([] = intact)."""
    problem = _blob_ok(layout, manifest_digest)
    if problem:
        return [problem]
    algo, _, hexdigest = manifest_digest.partition(":")
    try:
        manifest: dict[str, Any] = json.loads((layout / "blobs" / algo / hexdigest).read_bytes())
        descriptors = [manifest["config"], *manifest["layers"]]
    except (ValueError, KeyError, TypeError):
        return [f"manifest {manifest_digest} is not an image manifest"]
    problems = [p for d in descriptors if (p := _blob_ok(layout, str(d.get("digest")), d.get("size")))]
    index = layout / "index.json"
    if not index.is_file() or manifest_digest not in index.read_text(errors="replace"):
        problems.append(f"index.json does not reference manifest {manifest_digest}")
    return problems


def locate(name: str, base: Path | None, known: list[Path]) -> Path:
    """Where a subject lives: a known artifact path ending in the subject's name, else base/name."""
    if Path(name).is_absolute():
        return Path(name)
    for path in known:
        if path.absolute().as_posix().endswith("/" + name.lstrip("/")):
            return path
    return (base or Path.cwd()) / name


def _check_subject(subject: dict[str, Any], base: Path | None, known: list[Path]) -> Check:
    name = str(subject.get("name", ""))
    digest = "sha256:" + str(subject.get("digest", {}).get("sha256", ""))
    kind = str(subject.get("annotations", {}).get("kind", ""))
    if kind == "oci-manifest":
        return Check(name, True, "image manifest (checked through its OCI layout)")
    path = locate(name, base, known)
    if not path.exists():
        return Check(name, False, f"missing on disk: {path}")
    if path.is_dir():
        problems = check_oci_layout(path, digest)
        return Check(name, not problems, "; ".join(problems) or f"OCI layout intact ({digest})")
    actual = "sha256:" + file_sha256(path)
    return Check(name, actual == digest, f"{actual}" if actual == digest else f"{actual} != signed {digest}")


def _statement(envelope: bytes, key: Ed25519PublicKey | None) -> dict[str, Any]:
    """The signed in-toto statement (SignatureInvalid, a KilnError, if the signature fails); with no
    ``key``, ``envelope`` is an unsigned statement."""
    payload_type, payload = (
        open_envelope(envelope, key) if key is not None else (IN_TOTO_PAYLOAD_TYPE, envelope)
    )
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise VerificationFailed("signed payload is not JSON") from None
    if (
        payload_type != IN_TOTO_PAYLOAD_TYPE
        or not isinstance(stmt, dict)
        or stmt.get("_type") != STATEMENT_TYPE
    ):
        raise VerificationFailed("signed payload is not an in-toto Statement v1")
    if stmt.get("predicateType") != SLSA_PROVENANCE or not isinstance(stmt.get("predicate"), dict):
        raise VerificationFailed(f"unexpected predicate type {stmt.get('predicateType')!r}")
    build_type = stmt["predicate"].get("buildDefinition", {}).get("buildType")
    if build_type not in BUILD_TYPES:
        raise VerificationFailed(
            f"unsupported provenance format {build_type!r}", hint="verify it with the Kiln that built it"
        )
    if not isinstance(stmt.get("subject"), list):
        raise VerificationFailed("the signed statement has no subjects")
    return stmt


def _check_manifest(subjects: list[dict[str, Any]], base: Path | None, layouts: list[Path]) -> list[Check]:
    manifest = next((s for s in subjects if s.get("annotations", {}).get("kind") == "oci-manifest"), None)
    if manifest is None:
        return []
    digest = "sha256:" + manifest["digest"]["sha256"]
    dirs = [locate(s["name"], base, layouts) for s in subjects if s is not manifest]
    holders = [d for d in [*dirs, *layouts] if d.is_dir() and (d / "oci-layout").exists()]
    if any(not check_oci_layout(d, digest) for d in holders):
        return []
    return [Check(manifest["name"], False, f"no intact OCI layout on disk holds manifest {digest}")]


def _check_byproducts(stmt: dict[str, Any], store: Store) -> list[Check]:
    checks = []
    for item in stmt["predicate"].get("runDetails", {}).get("byproducts", []):
        if item.get("name") in (PACKAGE_LIST, CATALOG_LOCK):
            continue  # catalog data, not files: compared with the catalog record
        digest = "sha256:" + item.get("digest", {}).get("sha256", "")
        blob = readable_blob(store, digest)
        ok = blob.is_file() and "sha256:" + file_sha256(blob) == digest
        checks.append(
            Check(f"evidence {item.get('name')}", ok, digest if ok else f"{digest} missing or altered")
        )
    return checks


def run_checks(
    envelope: bytes,
    key: Ed25519PublicKey | None,
    *,
    base: Path | None,
    store: Store | None,
    layouts: list[Path] | None = None,
    catalog: CatalogEntry | None = None,
    artifacts_deleted: bool = False,
) -> list[Check]:
    """Every check, passed or failed (signature first); raises only when nothing can be checked.
    ``key`` None: ``envelope`` is an unsigned statement, every check but the signature's is made.
    ``artifacts_deleted`` (a retired image): the subjects are not looked for on disk; the signature,
    the evidence blobs, the catalog record and the kept documents are still checked."""
    stmt = _statement(envelope, key)
    if key is None:
        checks = [
            Check("signature", True, "not signed: digests are checked, their origin is not", skipped=True)
        ]
    else:
        checks = [Check("signature", True, f"valid ed25519 signature by {key_id(key)}")]
    if base is None and catalog is not None:  # subjects are named relative to the image directory
        base = image_dir(stmt, catalog.record)
    subjects = [s for s in stmt["subject"] if isinstance(s, dict)]
    if artifacts_deleted:
        checks.append(
            Check("artifacts", True, f"{RETIRED} ({len(subjects)} signed subjects not on disk by design)")
        )
    else:
        checks += [_check_subject(subject, base, layouts or []) for subject in subjects]
        checks += _check_manifest(subjects, base, layouts or [])
    if store is not None:
        checks += _check_byproducts(stmt, store)
    if catalog is not None:
        checks += check_catalog(stmt, catalog)
    return checks


def verify_provenance(
    envelope: bytes,
    key: Ed25519PublicKey,
    *,
    base: Path | None,
    store: Store | None,
    layouts: list[Path] | None = None,
    catalog: CatalogEntry | None = None,
) -> list[Check]:
    """All checks; raises VerificationFailed listing every failed one."""
    checks = run_checks(envelope, key, base=base, store=store, layouts=layouts, catalog=catalog)
    if any(not c.ok for c in checks):
        raise VerificationFailed.of(checks)
    return checks
