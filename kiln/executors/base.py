"""The executor interface: where builds submitted by the API (later pipelines) run.

:class:`~kiln.executors.local.LocalExecutor` runs each in a process on this host (the embedded
default); :class:`~kiln.executors.queue.QueueExecutor` queues them in PostgreSQL for ``kiln worker``
processes on any machine. :func:`executor_for` picks by the catalog's database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

from kiln.errors import KilnError
from kiln.models import BuildRequest

if TYPE_CHECKING:
    from kiln.settings import Settings
    from kiln.store import Store


class JobError(BaseModel):
    """Why a worker ended before its build was recorded."""

    model_config = ConfigDict(frozen=True)

    message: str
    hint: str | None = None
    issues: list[str] | None = None


class Submitted(BaseModel):
    model_config = ConfigDict(frozen=True)

    job: str
    build_id: str


class JobFailed(KilnError):
    """The request was refused before a build started (bad recipe, say)."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.message, hint=error.hint)
        self.issues = error.issues


class Executor(Protocol):
    def submit(self, request: BuildRequest, *, wait: float = 60.0) -> Submitted:
        """Start or queue the build; return once its build id is recorded (JobFailed if refused)."""
        ...

    def cancel(self, build_id: str) -> bool:
        """Cancel a queued or running build; False when this executor does not know it."""
        ...


def executor_for(store: Store, settings: Settings) -> Executor:
    """PostgreSQL catalog: the queue executor; SQLite: the local one."""
    if store.database_url.startswith(("postgresql", "postgres:")):
        from kiln.executors.queue import QueueExecutor

        return QueueExecutor(store.database_url, settings)
    from kiln.executors.local import LocalExecutor

    return LocalExecutor(store, settings)
