"""``kiln verify``: the provenance signature holds and every subject still matches what is on disk.

Checks: the DSSE signature with the given public key (fails if the statement was edited or signed
with another key); each subject (an OCI layout: manifest, config and every layer blob re-hashed;
a file: re-hashed); each byproduct (evidence blob in the store) re-hashed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiln.errors import KilnError
from kiln.evidence.provenance import SLSA_PROVENANCE, STATEMENT_TYPE
from kiln.evidence.signing import IN_TOTO_PAYLOAD_TYPE, key_id, open_envelope
from kiln.store import Store, file_sha256


class VerificationFailed(KilnError):
    """The image's evidence does not verify."""


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


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


def verify_provenance(
    envelope: bytes,
    key: Ed25519PublicKey,
    *,
    base: Path | None,
    store: Store | None,
    layouts: list[Path] | None = None,
) -> list[Check]:
    """All checks; raises VerificationFailed listing the failed ones (signature first)."""
    payload_type, payload = open_envelope(envelope, key)  # SignatureInvalid is a KilnError
    checks = [Check("signature", True, f"valid ed25519 signature by {key_id(key)}")]
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise VerificationFailed("signed payload is not JSON") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE or stmt.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed("signed payload is not an in-toto Statement v1")
    if stmt.get("predicateType") != SLSA_PROVENANCE:
        raise VerificationFailed(f"unexpected predicate type {stmt.get('predicateType')!r}")
    subjects = stmt.get("subject") or []
    for subject in subjects:
        checks.append(_check_subject(subject, base, layouts or []))
    manifest = next((s for s in subjects if s.get("annotations", {}).get("kind") == "oci-manifest"), None)
    if manifest is not None:
        digest = "sha256:" + manifest["digest"]["sha256"]
        dirs = [locate(s["name"], base, layouts or []) for s in subjects if s is not manifest]
        holders = [d for d in [*dirs, *(layouts or [])] if d.is_dir() and (d / "oci-layout").exists()]
        if not any(not check_oci_layout(d, digest) for d in holders):
            checks.append(
                Check(manifest["name"], False, f"no intact OCI layout on disk holds manifest {digest}")
            )
    if store is not None:
        for item in stmt["predicate"].get("runDetails", {}).get("byproducts", []):
            digest = "sha256:" + item.get("digest", {}).get("sha256", "")
            blob = store.blob_path(digest)
            ok = blob.is_file() and "sha256:" + file_sha256(blob) == digest
            checks.append(
                Check(f"evidence {item.get('name')}", ok, digest if ok else f"{digest} missing or altered")
            )
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "\n".join(f"  {c.what}: {c.detail}" for c in failed)
        raise VerificationFailed(f"verification failed ({len(failed)} of {len(checks)} checks):\n{lines}")
    return checks
