"""How long a build of a known recipe took last time: the progress display's estimate.

The catalog keeps every build with its JSON-lines log; the newest succeeded build of the same recipe
name (the same version preferred) gives the total and each top-level stage's duration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kiln.catalog import Catalog
from kiln.catalog.buildlog import read_log
from kiln.errors import KilnError
from kiln.models import BuildRequest
from kiln.settings import Settings
from kiln.store import Store
from kiln.yamlsrc import parse_yaml

_SEARCHED = 200  # the newest builds looked at


@dataclass(frozen=True)
class Estimate:
    """The last build's duration, in total and per top-level stage (keyed by the stage's message)."""

    build_id: str
    total: float
    stages: dict[str, float] = field(default_factory=dict)


def stage_durations(log: Path) -> tuple[float | None, dict[str, float]]:
    """(the build's duration, {stage message: seconds}) from a build log's top-level stages."""
    depth, total, stages = 0, None, {}
    for line in read_log(log):
        record = line.record or {}
        if record.get("kind") == "start":
            depth += 1
        elif record.get("kind") == "end":
            depth -= 1
            seconds = record.get("duration")
            if not isinstance(seconds, (int, float)):
                continue
            if depth == 0 and record.get("scope") == "build":
                total = float(seconds)
            elif depth == 1:
                stages[str(record.get("message", ""))] = float(seconds)
    return total, stages


def last_build(store: Store, name: str, version: str) -> Estimate | None:
    """The estimate from the newest succeeded build of ``name`` (``version`` preferred), if any."""
    if store.database is None and not (store.home / "catalog.db").exists():
        return None  # a fresh data dir: nothing to estimate from (and no catalog to create here)
    catalog = Catalog.open(store.database_url)
    try:
        recent = catalog.list_builds(limit=_SEARCHED)
        builds = [b for b in recent if b.recipe_name == name and b.status == "succeeded"]
    finally:
        catalog.close()
    builds.sort(key=lambda b: (b.recipe_version == version, b.started), reverse=True)
    for build in builds:
        try:
            total, stages = stage_durations(Path(build.log_path))
        except (KilnError, OSError, json.JSONDecodeError):
            continue
        total = total if total is not None else build.duration
        if total:
            return Estimate(build.id, total, stages)
    return None


def recipe_estimate(request: BuildRequest, settings: Settings) -> Estimate | None:
    """The estimate for the recipe a build request names (None when it cannot be read: the build
    reports that itself, with the line)."""
    try:
        data = parse_yaml(request.recipe.path, request.recipe.text).data
        if not isinstance(data, dict) or not data.get("name"):
            return None
        store = Store.open(request.data_dir, settings)
        return last_build(store, str(data["name"]), str(data.get("version", "")))
    except (KilnError, OSError):
        return None
