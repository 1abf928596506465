"""``kiln serve``: the REST API and web UI over this data directory's catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.common import DataDirOption, console, err_console, settings


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8440,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=64, help="Server processes (default: one per CPU, at most 4)."),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate (chain).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key.")] = None,
    insecure_http: Annotated[
        bool, typer.Option("--insecure-http", help="Allow plain HTTP on a non-loopback address.")
    ] = False,
    public_read: Annotated[
        bool, typer.Option("--public-read", help="Anonymous callers may read images and builds.")
    ] = False,
    verify_key: Annotated[
        Path | None, typer.Option("--verify-key", help="Public key that checks images' provenance.")
    ] = None,
    no_webhooks: Annotated[
        bool, typer.Option("--no-webhooks", help="Do not deliver webhooks from this process.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the REST API (/api/v1) and the web UI (and deliver webhooks, unless --no-webhooks)."""
    from kiln.api.config import ApiConfig
    from kiln.api.server import DEFAULT_WORKERS, check_binding, serve
    from kiln.errors import KilnError

    if (tls_cert is None) != (tls_key is None):
        raise KilnError("--tls-cert and --tls-key go together")
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    warning = check_binding(host, tls, insecure_http)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}")
    config = settings()
    api = ApiConfig(
        data_dir=(data_dir or config.data_dir).expanduser().absolute(),
        settings=config,
        public_read=public_read,
        verify_key=verify_key.expanduser().absolute() if verify_key else None,
        secure_cookies=tls is not None,
    )
    workers = workers or DEFAULT_WORKERS
    scheme = "https" if tls else "http"
    console.print(f"serving {api.data_dir} on {scheme}://{host}:{port}/ (API: /api/v1, Ctrl-C stops)")
    if no_webhooks:
        serve(api, host=host, port=port, workers=workers, tls=tls)
        return
    from kiln.events.dispatch import hosted

    with hosted(api.data_dir, config):
        serve(api, host=host, port=port, workers=workers, tls=tls)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
