"""``kiln serve`` for real: uvicorn on a free loopback port; non-loopback plain HTTP is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.api.seed import Seeded
from tests.api.server import KILN, kiln_serve


def test_serves_the_catalog_on_loopback(seeded: Seeded) -> None:
    with kiln_serve(seeded.home, "--public-read") as url:
        images = httpx.get(url + "/api/v1/images", params={"package": "libssl3"}).json()["items"]
        assert {i["ref"] for i in images} == {"web@1.0.0/1", "app@2.0.0/1"}


def test_plain_http_elsewhere_needs_an_explicit_opt_out(tmp_path: Path) -> None:
    refused = subprocess.run([str(KILN), "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1
    assert "refusing to serve plain HTTP on 0.0.0.0" in refused.stderr and "--insecure-http" in refused.stderr
    lonely = subprocess.run([str(KILN), "serve", "--tls-cert", "c.pem", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert lonely.returncode == 1 and "--tls-cert and --tls-key go together" in lonely.stderr
