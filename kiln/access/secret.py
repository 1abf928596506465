"""The server secret keying token HMACs: 32 random bytes in the data directory, mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_BYTES = 32


def secret_path(home: Path) -> Path:
    return home / "secrets" / "api-token-hmac.key"


def server_secret(home: Path) -> bytes:
    """The data directory's secret, created on first use (atomically: concurrent first users agree)."""
    path = secret_path(home)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
        try:
            os.link(tmp, path)  # fails if another process made it first: then use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        data = path.read_bytes()
    if len(data) != SECRET_BYTES:
        from kiln.errors import KilnError

        raise KilnError(f"{path} is not a {SECRET_BYTES}-byte key", hint="restore it, or remove it and "
                        "create new tokens (removing it invalidates every token)")  # fmt: skip
    return data
