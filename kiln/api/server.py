"""Running the app with uvicorn: loopback by default; elsewhere only with TLS or an explicit opt-out."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import ipaddress
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.api.config import ApiConfig
from kiln.errors import KilnError

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Server processes unless ``--workers`` says otherwise: one per CPU (at most 4), since a Python
process answers on one core at a time (``bench/api.py``)."""
CONFIG_VARIABLE = "KILN_API_HANDOFF"
"""Set by ``kiln serve --workers N`` for its own uvicorn worker processes only (not a user setting)."""
SHUTDOWN_GRACE = 5  # seconds requests in flight get to finish on SIGTERM before they are cancelled


def config_json(config: ApiConfig) -> str:
    fields = dataclasses.asdict(config)
    return json.dumps({**fields, "settings": dataclasses.asdict(config.settings)}, default=str)


def config_from_json(text: str) -> ApiConfig:
    from kiln.settings import Settings

    raw: dict[str, Any] = json.loads(text)
    paths = {f.name for f in dataclasses.fields(Settings) if "Path" in str(f.type)}
    fields: dict[str, Any] = {
        k: Path(v) if k in paths and v is not None else v for k, v in raw["settings"].items()
    }
    settings = Settings(**fields)
    verify_key = Path(raw["verify_key"]) if raw["verify_key"] else None
    return ApiConfig(
        **{**raw, "data_dir": Path(raw["data_dir"]), "settings": settings, "verify_key": verify_key}
    )


def app_from_handoff() -> FastAPI:
    """The app in a uvicorn worker process started by ``kiln serve --workers N``."""
    from kiln.api.app import create_app

    app = create_app(config_from_json(os.environ[CONFIG_VARIABLE]))
    settle()
    return app


def settle() -> None:
    """Move what start-up allocated (~160,000 objects: modules, the app, SQLAlchemy's and pydantic's
    tables) out of the cyclic collector's sight. Without it every full collection walks them all:
    120-480 ms pauses every few seconds under load, measured in ``bench/api.py`` runs, which were the
    p99 of every endpoint, the static floor included."""
    gc.collect()
    gc.freeze()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, tls: tuple[Path, Path] | None, insecure_http: bool) -> str | None:
    """Refuse a non-loopback plain-HTTP binding unless asked for; returns a warning to show, if any."""
    if is_loopback(host) or tls is not None:
        return None
    if not insecure_http:
        raise KilnError(
            f"refusing to serve plain HTTP on {host}: tokens would cross the network in clear text",
            hint="give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy",
        )
    return f"serving plain HTTP on {host}: API tokens and session cookies are sent unencrypted"


def serve(config: ApiConfig, *, host: str, port: int, workers: int, tls: tuple[Path, Path] | None) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from kiln.api.app import create_app

    for path in tls or ():
        if not path.is_file():
            raise KilnError(f"TLS file {path} does not exist")
    app = create_app(config)  # fails here (bad catalog, data dir) rather than in a worker
    if workers > 1:  # worker processes import the app: hand them the configuration
        os.environ[CONFIG_VARIABLE] = config_json(config)
    options = uvicorn.Config(
        "kiln.api.server:app_from_handoff" if workers > 1 else app,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,  # open event and log streams never end by themselves
    )
    with contextlib.suppress(KeyboardInterrupt):  # what uvicorn.run does, with sockets that keep TCP_NODELAY
        if workers == 1:
            settle()
            uvicorn.Server(options).run()
        else:
            Multiprocess(options, sockets=[tcp_socket(options.bind_socket())]).run()


def tcp_socket(sock: socket.socket) -> socket.socket:
    """``sock`` marked as TCP. uvicorn binds the socket it hands its worker processes with protocol 0,
    so asyncio does not set TCP_NODELAY on the connections they accept, and every keep-alive answer
    after the first waits ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149; bench/api.py
    measured 400 requests/s with 2 workers against 1,100 with one)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock
