"""Kiln's process settings: every environment variable Kiln honours, read in one place, once.

The command line loads them with :meth:`Settings.from_env` at start-up and hands them down; library
callers (a worker, a test) build a :class:`Settings` themselves. Nothing else in Kiln reads
``os.environ`` for its own configuration, so a build's behaviour is a function of its arguments.

=========================  ====================================================================
variable                   meaning
=========================  ====================================================================
``KILN_HOME``              data directory (default ``$XDG_DATA_HOME/kiln``, ``~/.local/share/kiln``)
``KILN_CACHE_DIR``         cache directory shared between data directories (default ``HOME/cache``)
``KILN_DATABASE_URL``      catalog database (default SQLite ``HOME/catalog.db``)
``KILN_STORE_URL``         shared artifact store: a directory or ``s3://bucket/prefix`` (kiln.objectstore)
``KILN_TMPFS``             ``0``: no RAM scratch for bootstraps and overlay upper directories
``KILN_MOUNT_NAMESPACE``   ``host``: builds stay in the host's mount and PID namespaces (debugging)
``KILN_ACCEL``             ``kvm`` or ``tcg``: skip the KVM probe for VM tests
``KILN_SIGNING_KEY``       ed25519 key that signs provenance when the recipe names none
``KILN_S3_ENDPOINT_URL``   S3-compatible endpoint for the S3 actions of components
``SOURCE_DATE_EPOCH``      the build's timestamp (reproducible builds), over the recipe's
=========================  ====================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kiln.errors import KilnError

Accel = Literal["auto", "kvm", "tcg"]


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration (frozen; no field is read from the environment after loading)."""

    home: Path | None = None  # None: the default data directory
    cache_dir: Path | None = None
    database_url: str | None = None
    store_url: str | None = None
    tmpfs: bool = True
    private_namespaces: bool = True
    accel: Accel = "auto"
    signing_key: Path | None = None
    s3_endpoint_url: str | None = None
    source_date_epoch: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (the process environment by default)."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value).expanduser() if value else None

        accel = env.get("KILN_ACCEL", "").strip().lower()
        epoch = env.get("SOURCE_DATE_EPOCH", "").strip()
        if epoch and not re.fullmatch(r"\d{1,20}", epoch):
            raise KilnError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds",
                            hint="unset it or set it to a Unix time, e.g. 1700000000")  # fmt: skip
        xdg = env.get("XDG_DATA_HOME", "").strip()
        return cls(
            home=path("KILN_HOME") or (Path(xdg) / "kiln" if xdg else None),
            cache_dir=path("KILN_CACHE_DIR"),
            database_url=env.get("KILN_DATABASE_URL") or None,
            store_url=env.get("KILN_STORE_URL") or None,
            tmpfs=env.get("KILN_TMPFS", "1") != "0",
            private_namespaces=env.get("KILN_MOUNT_NAMESPACE") != "host",
            accel=accel if accel in ("kvm", "tcg") else "auto",  # type: ignore[arg-type]
            signing_key=path("KILN_SIGNING_KEY"),
            s3_endpoint_url=env.get("KILN_S3_ENDPOINT_URL") or None,
            source_date_epoch=int(epoch) if epoch else None,
        )

    @property
    def data_dir(self) -> Path:
        """The data directory: ``home``, else ``~/.local/share/kiln``."""
        return (self.home or Path.home() / ".local/share/kiln").expanduser().absolute()
