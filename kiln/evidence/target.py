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
    p = Path(path)
    return p if p.is_absolute() else store.home / p


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
    """Yield the image's root filesystem (unpacked from its OCI layout when catalogued).

    ``only``: for a catalogued image, extract just these paths (a partial root, much faster).
    """
    path = Path(ref)
    if path.is_dir():
        if not (path / "etc").is_dir():
            raise KilnError(f"{ref}: not a root filesystem (no etc/)")
        yield ResolvedImage(directory_identity(path), path, None, None)
        return
    from kiln.catalog import Catalog
    from kiln.verify.instance import fresh_instance

    catalog = Catalog.open(store.database_url)
    try:
        record = catalog.get_image(ref)
    finally:
        catalog.close()
    layouts = [a for a in record.artifacts if a.kind == "oci"]
    if not layouts:
        raise KilnError(f"{ref}: no OCI artifact to unpack", hint="evidence commands need an 'oci' output")
    identity = ImageIdentity(record.name, f"{record.version}/{record.build}", record.digest, record.created)
    layout = artifact_path(store, layouts[0].path)
    if only is not None:
        from kiln.evidence.extract import read_files, write_files

        with store.scratch("partial-root-") as scratch:
            partial = scratch / "root"
            partial.mkdir()
            write_files(read_files(layout, only.__contains__), partial)
            yield ResolvedImage(identity, partial, record, None)
        return
    with fresh_instance(layout, store.home / "tmp") as instance:
        yield ResolvedImage(identity, instance.root, record, None)
