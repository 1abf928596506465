"""Build orchestration: a recipe becomes an image version (or fails and publishes nothing).

``kiln.build.run_build(request, monitor=...)`` is the one entry point (see :mod:`kiln.build.orchestrate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiln.build.orchestrate import BuildResult, run_build

__all__ = ["BuildResult", "run_build"]


def __getattr__(name: str) -> Any:
    # Lazy: the stage modules import kiln.build.layercache, which must not pull the orchestrator in.
    if name in __all__:
        from kiln.build import orchestrate

        return getattr(orchestrate, name)
    raise AttributeError(name)
