"""What one server instance serves: a data directory, its settings, and the access policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kiln.settings import Settings


@dataclass(frozen=True)
class ApiConfig:
    """Frozen server configuration (the app factory's one argument)."""

    data_dir: Path
    settings: Settings
    public_read: bool = False  # anonymous callers may read images and builds (writes always need a token)
    verify_key: Path | None = None  # public key that checks images' signed provenance
    secure_cookies: bool = False  # served over TLS: the session cookie gets the Secure flag
    submit_timeout: float = 60.0  # how long POST /builds waits for the worker to start the build
