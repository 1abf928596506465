"""Resolve a recipe's image parent to one exact image before the build starts.

``kiln:NAME@CONSTRAINT`` becomes one recorded version (refused when disabled or retired, warned when
deprecated); ``oci-layout:`` is opened; ``docker://`` is copied by digest with skopeo. What comes out
is the OCI layout the build stacks on, its manifest digest, and, for a Kiln image, the parent's own
lock data (apt sources, .debs, SOURCE_DATE_EPOCH, and its own parent: the root of the lineage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kiln.catalog import Catalog
from kiln.catalog.parents import ParentUnavailable, select_parent
from kiln.monitor import Monitor
from kiln.recipes.loader import LoadedRecipe
from kiln.recipes.parentref import KilnImageSource, OciLayoutSource, RegistrySource
from kiln.rootfs.imageparent import fetch_registry, open_parent_layout
from kiln.store import Store


@dataclass(frozen=True)
class ResolvedParent:
    """The exact image a build starts from."""

    text: str  # as the recipe wrote it: kiln:org-base@1.x, oci-layout:..., docker://...
    kind: Literal["kiln", "oci-layout", "registry"]
    layout: Path
    tag: str | None
    digest: str  # the parent's OCI manifest digest
    ref: str | None = None  # the catalogued version, e.g. org-base@1.2.0/3
    state: str | None = None
    lock: dict[str, Any] | None = None  # the parent image's recorded lock data
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """How lineage, SBOMs and provenance name it: the exact version, else the reference."""
        return f"kiln:{self.ref}" if self.ref else self.text

    def lock_entry(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "digest": self.digest, "constraint": self.text}


def resolve_kiln(catalog: Catalog, source: KilnImageSource, text: str, architecture: str) -> ResolvedParent:
    with catalog.session() as s:
        key = select_parent(s, source)
    image = catalog.get_image(key.ref)
    oci = next((a for a in image.artifacts if a.kind == "oci"), None)
    if oci is None or not (Path(oci.path) / "index.json").is_file():
        where = oci.path if oci else "none recorded"
        raise ParentUnavailable(
            f"parent {text}: {key.ref} has no OCI layout on this machine ({where})",
            hint="build the parent here, or pull it into an OCI layout and use oci-layout:PATH",
        )
    layout = open_parent_layout(Path(oci.path), None, architecture)
    if layout.manifest_digest != image.digest:
        raise ParentUnavailable(
            f"parent {text}: the layout of {key.ref} holds {layout.manifest_digest}, "
            f"the catalog records {image.digest}",
            hint="the artifacts were changed after the build; rebuild the parent",
        )
    warnings = []
    if key.state == "deprecated":
        warnings.append(
            f"parent {text} resolves to {key.ref}, which is deprecated: plan a move to a newer parent"
        )
    return ResolvedParent(text, "kiln", Path(oci.path), None, image.digest, key.ref, key.state,
                          catalog.lock(key.ref), warnings)  # fmt: skip


def resolve_parent_image(
    loaded: LoadedRecipe, catalog: Catalog, store: Store, monitor: Monitor
) -> ResolvedParent | None:
    """The image the recipe's parent names, or None for a distribution parent (bootstrapped)."""
    spec = loaded.recipe.parent
    source = spec.source
    if isinstance(source, KilnImageSource):
        return resolve_kiln(catalog, source, spec.image, spec.architecture)
    if isinstance(source, OciLayoutSource):
        path = (loaded.path.parent / source.path).resolve()
        image = open_parent_layout(path, source.tag, spec.architecture)
        return ResolvedParent(spec.image, "oci-layout", path, source.tag, image.manifest_digest)
    if isinstance(source, RegistrySource):
        image = fetch_registry(store, source, spec.architecture, monitor)
        return ResolvedParent(spec.image, "registry", image.layout, "parent", image.manifest_digest)
    return None
