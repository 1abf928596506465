"""Resolve the IMAGE argument of evidence commands: a catalogued image (its OCI artifact, unpacked
into a throwaway root) or a root filesystem directory given by path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.errors import KilnError
from kiln.evidence.sbom import ImageIdentity
from kiln.rootfs.dpkg import STATUS_FILE
from kiln.store import Store


@dataclass
class ResolvedImage:
    identity: ImageIdentity
    root: Path
    record: Any | None  # kiln.catalog.ImageRecord when catalogued
    artifacts_base: Path | None


def artifact_path(store: Store, path: str) -> Path:
    return store.artifact_path(path)


def directory_identity(root: Path) -> ImageIdentity:
    """A stable identity for an uncatalogued root: digest over its dpkg status file."""
    status = root / STATUS_FILE
    data = status.read_bytes() if status.is_file() else b""
    created = (
        datetime.fromtimestamp(int(status.stat().st_mtime), UTC)
        if status.is_file()
        else datetime(1970, 1, 1, tzinfo=UTC)
    )
    return ImageIdentity(
        root.name or "rootfs", "0.0.0", "sha256:" + hashlib.sha256(data).hexdigest(), created
    )


@contextmanager
def resolve_image(store: Store, ref: str, *, only: frozenset[str] | None = None) -> Iterator[ResolvedImage]:
    """Yield the image's root filesystem: ``ref`` itself when it is a root directory, else the catalogued
    image unpacked (see :func:`kiln.verify.instance.image_root`; ``only``: just these paths)."""
    path = Path(ref)
    if path.is_dir():
        if not (path / "etc").is_dir():
            raise KilnError(f"{ref}: not a root filesystem (no etc/)")
        yield ResolvedImage(directory_identity(path), path, None, None)
        return
    from kiln.verify.instance import image_root

    with image_root(store, ref, only=only) as image:
        record = image.record
        identity = ImageIdentity(
            record.name, f"{record.version}/{record.build}", record.digest, record.created
        )
        yield ResolvedImage(identity, image.root, record, None)
