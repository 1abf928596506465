"""``kiln tokens`` and ``kiln audit`` through the real CLI; ``kiln serve`` over TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api.server import KILN, kiln_serve


def kiln(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KILN), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KILN_HOME": str(home)})  # fmt: skip


def test_tokens_lifecycle_and_audit(tmp_path: Path) -> None:
    bad = kiln(tmp_path, "tokens", "create", "ci", "--scope", "images:raed")
    assert (
        bad.returncode == 2 and "unknown scope 'images:raed'" in bad.stderr and "Traceback" not in bad.stderr
    )
    assert kiln(tmp_path, "tokens", "create", "ci", "--scope", "admin", "--expires", "soon").returncode == 2
    made = kiln(tmp_path, "tokens", "create", "ci", "--scope", "admin", "--expires", "90d")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("kiln_") and "not shown again" in made.stderr
    assert kiln(tmp_path, "tokens", "create", "ci", "--scope", "admin").returncode == 1  # name taken
    listed = json.loads(kiln(tmp_path, "tokens", "list", "--json").stdout)
    assert [(t["name"], t["scopes"], t["revoked"]) for t in listed] == [("ci", ["admin"], None)]
    secret = token.split("_", 2)[2]  # kiln_<id>_<secret>; the secret itself may contain '_'
    assert len(secret) == 43 and secret not in json.dumps(listed)
    assert secret.encode() not in (tmp_path / "catalog.db").read_bytes()
    with kiln_serve(tmp_path) as url:
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(url + "/api/v1/builds/abc/cancel", headers=auth).status_code == 404
        assert kiln(tmp_path, "tokens", "revoke", "ci").returncode == 0
        assert httpx.get(url + "/api/v1/images", headers=auth).status_code == 401
    audit = json.loads(kiln(tmp_path, "audit", "--json").stdout)
    assert [(a["action"], a["status"], a["remote"]) for a in audit] == [
        ("POST /api/v1/builds/abc/cancel", 404, "127.0.0.1")
    ]
    assert audit[0]["actor"].startswith("ci (")


def test_serve_over_tls(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))  # fmt: skip
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    home = tmp_path / "home"
    with kiln_serve(home, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
                    "--public-read", scheme="https", verify=context) as url:  # fmt: skip
        assert url.startswith("https://")
        assert httpx.get(url + "/api/v1/images", verify=context).json() == {"items": [], "next_cursor": None}
        login = httpx.get(url + "/login", verify=context)
        assert "Secure" in login.headers["set-cookie"]
