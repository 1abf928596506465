"""Vulnerability feed importers: one module per source format, each yielding vulndb Records."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

# Debian release numbers (OSV ecosystems "Debian:12") → codenames (tracker keys, os-release).
DEBIAN_CODENAMES = {
    "7": "wheezy",
    "8": "jessie",
    "9": "stretch",
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "14": "forky",
}


class FeedError(KilnError):
    """A vulnerability feed could not be read or has an unexpected shape."""


def read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FeedError(f"{path}: cannot read: {exc.strerror}") from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FeedError(f"{path}: corrupt gzip data: {exc}") from exc
    return data


def load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{where}: not valid JSON: {exc}") from exc


def digest_of(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(path.rglob("*.json")):
            h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    else:
        h.update(path.read_bytes())
    return "sha256:" + h.hexdigest()


def detect_kind(path: Path) -> str:
    """``debian-tracker`` or ``osv-debian`` from the content (a dir or zip of OSV files, or JSON)."""
    if path.is_dir() or zipfile.is_zipfile(path):
        return "osv-debian"
    head = read_bytes(path)[:65536].decode("utf-8", "replace")
    # OSV records carry top-level "id" and "affected"; the tracker maps packages → CVE-/TEMP- ids.
    if re.search(r'"affected"\s*:', head) and re.search(r'"id"\s*:', head):
        return "osv-debian"
    if head.lstrip().startswith("{") and re.search(r'"(CVE|TEMP)-[^"]*"\s*:\s*\{', head):
        return "debian-tracker"
    if head.strip() == "{}":
        return "debian-tracker"
    raise FeedError(
        f"{path}: neither Debian Security Tracker JSON nor OSV records",
        hint="pass the tracker's /tracker/data/json or a directory/zip of OSV Debian records",
    )


__all__ = ["DEBIAN_CODENAMES", "FeedError", "detect_kind", "digest_of", "io", "load_json", "read_bytes"]
