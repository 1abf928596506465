"""Static files of the web UI, with the vendored htmx pinned by version and sha256."""

from __future__ import annotations

import base64
import hashlib
from importlib.resources import files
from pathlib import Path

STATIC = Path(str(files("kiln.web") / "static"))
TEMPLATES = Path(str(files("kiln.web") / "templates"))

HTMX_VERSION = "2.0.4"
HTMX_FILE = f"htmx-{HTMX_VERSION}.min.js"  # npm pack htmx.org@2.0.4: package/dist/htmx.min.js
HTMX_SHA256 = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"


def subresource_integrity(sha256_hex: str) -> str:
    """The ``integrity`` attribute value for a file with this sha256."""
    return "sha256-" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
