"""A real ``kiln serve`` on a free loopback port, always stopped."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.loopback import free_port

KILN = Path(__file__).resolve().parents[2] / ".venv/bin/kiln"


@contextmanager
def kiln_serve(
    home: Path, *args: str, scheme: str = "http", verify: ssl.SSLContext | bool = True
) -> Iterator[str]:
    """``kiln serve`` on a free loopback port; yields its base URL and always stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [str(KILN), "serve", "--port", str(port), *args],
        env={**os.environ, "KILN_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/api/v1/openapi.json", timeout=1, verify=verify)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise AssertionError(f"kiln serve did not start:\n{out}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
