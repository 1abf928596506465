"""ed25519 keys and DSSE envelopes (https://github.com/secure-systems-lab/dsse).

Private keys are PKCS#8 PEM files created with mode 0600 and refused when group/other can read
them; their content is never logged or put into an error message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiln.errors import KilnError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class SigningKeyError(KilnError):
    """A signing key cannot be created, read or used."""


class SignatureInvalid(KilnError):
    """A DSSE envelope does not verify with the given key."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key_id: str


def generate_key(path: Path, *, force: bool = False) -> KeyPair:
    """Create ``path`` (private, 0600) and ``path.pub`` (public). Never overwrites unless ``force``."""
    pub_path = path.with_name(path.name + ".pub")
    if not force and (path.exists() or pub_path.exists()):
        raise SigningKeyError(f"{path}: a key already exists", hint="choose another path or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        tmp.chmod(0o600)  # whatever the umask
        pub_path.write_bytes(public_pem(key.public_key()))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return KeyPair(path, pub_path, key_id(key.public_key()))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the signing key: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"{path}: private key is accessible by group/others (mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an ed25519 key", hint="create one with: kiln keys generate PATH")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file, or the public half of a private key file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the key: {exc.strerror}") from None
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an ed25519 public key")
    return key


def sign_envelope(payload: bytes, key: Ed25519PrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    signature = key.sign(pae(payload_type, payload))
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }
    return (json.dumps(envelope, indent=2, sort_keys=True) + "\n").encode()


def open_envelope(data: bytes, key: Ed25519PublicKey) -> tuple[str, bytes]:
    """(payload type, payload) if one signature verifies with ``key``; else SignatureInvalid."""
    try:
        envelope = json.loads(data)
        payload_type = str(envelope["payloadType"])
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureInvalid(f"not a DSSE envelope: {exc}") from None
    message = pae(payload_type, payload)
    for sig in signatures:
        try:
            key.verify(sig, message)
        except InvalidSignature:
            continue
        return payload_type, payload
    raise SignatureInvalid(
        f"signature does not verify with key {key_id(key)}",
        hint="the statement was changed after signing, or it was signed with another key",
    )
