"""The recipe loader's view of the registry: ``NAME@PATTERN`` → one exact version, saved as a file.

Documents are saved under the data directory (``registry/documents/NAME@VERSION.DIGEST.yaml``), so a
build reads, copies and records them exactly like a component file; the catalog is opened only when
a recipe has a registry reference.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from kiln.catalog import Catalog
from kiln.recipes.loader import RegistryDocument
from kiln.registry.components import get_component, resolve_component
from kiln.settings import Settings


class CatalogRegistry:
    """A :class:`~kiln.recipes.loader.ComponentRegistry` over a catalog opened on first use."""

    def __init__(self, open_catalog: Callable[[], Catalog], documents: Path) -> None:
        self._open = open_catalog
        self._catalog: Catalog | None = None
        self.documents = documents

    def fetch(self, name: str, pattern: str) -> RegistryDocument:
        if self._catalog is None:
            self._catalog = self._open()
        chosen = resolve_component(self._catalog, name, pattern)
        found = get_component(self._catalog, name, chosen.version)
        # named for people reading a step's file:line; content-addressed for everything else
        path = self.documents / f"{name.replace('/', '--')}@{chosen.version}.{chosen.digest[7:23]}.yaml"
        if not path.is_file():
            save(path, found.document)
        return RegistryDocument(name, chosen.version, chosen.digest, path, chosen.deprecation_reason)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def save(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a document)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def data_dir_registry(data_dir: Path, settings: Settings) -> CatalogRegistry:
    """The registry of the catalog of data directory ``data_dir`` (opened on first use)."""
    from kiln.store import Store

    return CatalogRegistry(
        lambda: Catalog.open(Store.open(data_dir, settings).database_url), data_dir / "registry" / "documents"
    )
