"""The queue executor: builds queued in PostgreSQL with Procrastinate, run by ``kiln worker`` processes.

``submit`` writes the catalog's ``queued`` build row, its job row and Procrastinate's job in ONE
transaction of one connection (Procrastinate defers through the psycopg connection SQLAlchemy holds),
so a build is either queued and visible, or not there at all: no lost or phantom builds. An identical
request still waiting is answered with the waiting build (Procrastinate's ``queueing_lock``).
``cancel`` cancels a waiting job at once, or asks the worker running it to abort (it kills the build's
process tree; kiln.executors.worker).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import TYPE_CHECKING, Any

from kiln.capabilities import Capabilities, check_queue_base, parse_tokens, queue_for
from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.catalog.engine import normalize_url
from kiln.catalog.models import BuildJobRow
from kiln.errors import KilnError, ValidationFailed
from kiln.executors.base import JobError, JobFailed, Submitted
from kiln.models import BuildRequest
from kiln.settings import Settings

if TYPE_CHECKING:
    import procrastinate

    from kiln.recipes.loader import LoadedRecipe

TASK = "kiln.build"
DEFAULT_QUEUE = "builds"
MAX_ATTEMPTS = 2  # a build whose worker died is retried once on another worker


def conninfo(url: str) -> str:
    """The libpq connection string of a catalog URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise KilnError("the build queue needs a PostgreSQL catalog (KILN_DATABASE_URL=postgresql://...)")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(
    url: str, *, asynchronous: bool, pool_timeout: float | None = None, concurrency: int | None = None
) -> procrastinate.App:
    """A Procrastinate app on the catalog's database (async connector for workers, sync for servers);
    ``pool_timeout``: how long a call waits for a connection (psycopg_pool's default is 30 s);
    ``concurrency``: a worker's concurrent jobs, which sizes its pool (see :func:`worker_pool`)."""
    import procrastinate

    pool: dict[str, Any] = {"timeout": pool_timeout} if pool_timeout is not None else {}
    if concurrency is not None:
        pool.update(worker_pool(concurrency))
    connector: Any = (
        procrastinate.PsycopgConnector(conninfo=conninfo(url), **pool)
        if asynchronous
        else procrastinate.SyncPsycopgConnector(conninfo=conninfo(url))
    )
    return procrastinate.App(connector=connector)


def worker_pool(concurrency: int) -> dict[str, int]:
    """Connections a worker keeps: psycopg_pool's default keeps 4 open however idle the worker is,
    which with its LISTEN connection and the catalog's made 6 per idle worker (100 connections, the
    PostgreSQL default, ran out at 16 workers; docs/scaling.md). It needs one for LISTEN, one for a
    fetch, heartbeat or finish of each job and one for the stalled-job sweep: open them on demand."""
    return {"min_size": 1, "max_size": concurrency + 2}


def requirements(request: BuildRequest, loaded: LoadedRecipe) -> Capabilities:
    """What a worker needs to run the build: the parent's architecture, qemu when a test boots the
    disk, and what the request asks for besides (``kvm``, ``disk>=50G``)."""
    asked = parse_tokens(request.requires, what="requires")
    recipe = loaded.recipe
    return Capabilities(
        arch=asked.arch or recipe.parent.architecture,
        qemu=asked.qemu or "vm" in recipe.test_instance_kinds(),
        kvm=asked.kvm,
        disk_gb=asked.disk_gb or 0,
    )


def queueing_lock(request: BuildRequest) -> str:
    """Identical requests (whoever asked) share a lock: while one waits, another is not queued."""
    same = request.model_copy(update={"requester": None}).model_dump_json()
    return "kiln-build-" + hashlib.sha256(same.encode()).hexdigest()[:40]


class QueueExecutor:
    """Submits builds to Procrastinate's queue in the catalog's PostgreSQL database."""

    def __init__(
        self, url: str, settings: Settings, *, queue: str = DEFAULT_QUEUE, max_attempts: int = MAX_ATTEMPTS
    ) -> None:
        self.url = url
        self.settings = settings
        self.queue = check_queue_base(queue)
        self.max_attempts = max_attempts
        self.app = make_app(url, asynchronous=False)
        self._catalog: Catalog | None = None
        self._opening = threading.Lock()  # the API server submits from several threads

    def catalog(self) -> Catalog:
        """The catalog, opened (schema checked, upgraded) once: not on every submission."""
        with self._opening:
            if self._catalog is None:
                self._catalog = Catalog.open(self.url)
            return self._catalog

    def submit(self, request: BuildRequest, *, wait: float = 60.0) -> Submitted:
        """Queue the build; returns at once with its id (the build is ``queued`` until a worker runs it)."""
        from procrastinate.exceptions import AlreadyEnqueued

        from kiln.events.emit import emit
        from kiln.events.model import build_queued
        from kiln.recipes.loader import load_recipe

        try:
            loaded = load_recipe(request.recipe.path, text=request.recipe.text)
            needs = requirements(request, loaded)
        except ValidationFailed as exc:
            raise JobFailed(
                JobError(message=exc.message, hint=exc.hint, issues=[str(i) for i in exc.issues])
            ) from None
        queue, lock, build_id = queue_for(self.queue, needs), queueing_lock(request), uuid.uuid4().hex
        catalog = self.catalog()
        try:
            with catalog.session(write=True) as s, s.begin():
                jobs.add_queued(
                    s,
                    build_id=build_id,
                    recipe_name=loaded.recipe.name,
                    recipe_version=loaded.recipe.version,
                    recipe_path=str(loaded.path),
                    queue=queue,
                    needs=needs,
                    max_attempts=self.max_attempts,
                    queueing_lock=lock,
                )
                psycopg_conn = s.connection().connection.driver_connection
                job_id = self.app.configure_task(
                    TASK, queue=queue, queueing_lock=lock, connection=psycopg_conn
                ).defer(build_id=build_id, request=request.model_dump(mode="json"))
                row = s.get(BuildJobRow, build_id)
                assert row is not None
                row.job_id = job_id
                emit(s, build_queued(build_id, str(loaded.path), request.requester))
        except AlreadyEnqueued:
            waiting = jobs.queued_with_lock(catalog, lock)
            if waiting is None:  # it started meanwhile; the caller may submit again
                raise KilnError(
                    "an identical build was queued and has just started; submit again for another one"
                ) from None
            return Submitted(job="", build_id=waiting)
        return Submitted(job=str(job_id), build_id=build_id)

    def cancel(self, build_id: str) -> bool:
        """A waiting build is cancelled at once (job and build row in one transaction); a running one
        is aborted by its worker (at once through LISTEN/NOTIFY, else within its polling interval)."""
        from procrastinate.jobs import Status

        catalog = self.catalog()
        job = jobs.job_of(catalog, build_id)
        if job is None or job.job_id is None:
            return False
        with catalog.session(write=True) as s, s.begin():
            conn = s.connection().connection.driver_connection
            manager = self.app.job_manager
            if not manager.cancel_job_by_id(job.job_id, abort=True, connection=conn):
                return False
            if manager.get_job_status(job.job_id, connection=conn) == Status.CANCELLED:
                jobs.cancel_in(s, build_id)
        return True
