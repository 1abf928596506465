"""The ``component`` trigger: a new version of a registry component a pipeline's recipe takes in a
range (``nginx@1.x``) is published. Each pipeline keeps, per range, the newest version it has seen
(set when it is applied); a newer version queues one run whose cause names the component, the
version the pipeline last saw and the new one."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.catalog import Catalog
from kiln.errors import KilnError
from kiln.registry.components import resolve_component
from kiln.registry.semver import parse_version, split_ref


def newest_in_range(catalog: Catalog, label: str) -> str | None:
    """The version ``NAME@PATTERN`` resolves to now (the registry's rules); None when none does."""
    try:
        return resolve_component(catalog, *split_ref(label)).version
    except KilnError:
        return None


@dataclass(frozen=True)
class ComponentUpdate:
    label: str  # NAME@PATTERN as the recipe writes it
    seen: str | None  # the newest version the pipeline had seen
    new: str

    @property
    def name(self) -> str:
        return split_ref(self.label)[0]

    @property
    def cause(self) -> str:
        before = self.seen or "none"
        return f"new version of component {self.name} in {self.label}: {before} -> {self.new}"

    @property
    def key(self) -> str:
        return f"component:{self.name}@{self.new}"


def updates(catalog: Catalog, cursor: dict[str, str | None]) -> tuple[list[ComponentUpdate], dict[str, str]]:
    """The ranges whose newest version is newer than the one seen, and the cursor's new values.
    Deprecating a range's newest version moves the range back: the cursor follows, nothing runs."""
    found: list[ComponentUpdate] = []
    moved: dict[str, str] = {}
    for label, seen in cursor.items():
        now = newest_in_range(catalog, label)
        if now is None or now == seen:
            continue
        moved[label] = now
        if seen is None or parse_version(now) > parse_version(seen):
            found.append(ComponentUpdate(label, seen, now))
    return found, moved
