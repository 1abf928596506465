"""Servers the distribution tests start on free loopback ports (and always stop)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.loopback import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@contextmanager
def server(argv: Sequence[str], url: str, *, env: dict[str, str] | None = None, log: Path) -> Iterator[None]:
    """Start ``argv`` in its own process group, wait until ``url`` answers, kill the group at the end."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def registry(root: Path, *, htpasswd: bool = False, delete: bool = True) -> Iterator[str]:
    """Debian's docker-registry (distribution 2.8, no referrers API) on 127.0.0.1; yields host:port."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = (FIXTURES / "registry/config.yml").read_text()
    config = config.replace("REGISTRY_DATA_DIR", str(root / "data")).replace(
        "127.0.0.1:5000", f"127.0.0.1:{port}"
    )
    if not delete:
        config = config.replace("enabled: true", "enabled: false")
    if htpasswd:
        config += f"auth:\n  htpasswd:\n    realm: kiln-test\n    path: {FIXTURES / 'registry/htpasswd'}\n"
    (root / "config.yml").write_text(config)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with server(["docker-registry", "serve", str(root / "config.yml")], f"http://127.0.0.1:{port}/v2/",
                env=env, log=root / "registry.log"):  # fmt: skip
        yield f"127.0.0.1:{port}"


@contextmanager
def moto(root: Path) -> Iterator[str]:
    """moto's server mode (S3, EC2, ... over real HTTP) on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    binary = Path(__file__).resolve().parents[2] / ".venv/bin/moto_server"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_RECORDER_FILEPATH"] = str(root / "recording.jsonl")  # POST /moto-api/recorder/start-recording
    with server([str(binary), "-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/moto-api/",
                env=env, log=root / "moto.log"):  # fmt: skip
        yield f"http://127.0.0.1:{port}"
