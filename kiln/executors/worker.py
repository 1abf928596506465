"""``kiln worker``: a Procrastinate worker that runs queued builds, each in a child process exactly as
the local executor runs it (``python -m kiln.executors.local``: own PID and mount namespaces), armed to
die with this process.

Per job: claim the next attempt in the catalog (the fencing token), run the child, record how the
attempt ended. Abort (``cancel``) or shutdown: SIGTERM the child (the build ends like Ctrl-C and
records itself failed), SIGKILL after :data:`KILL_AFTER`. Alongside, every worker registers itself
and its capabilities, and sweeps stalled jobs: a job whose worker stopped heartbeating is retried
(a new attempt; the old one can no longer record) or, with its attempts used up, marked failed. One
worker at a time sweeps (a PostgreSQL advisory lock), so a lost job is retried exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.capabilities import Capabilities, queues_served
from kiln.catalog import Catalog
from kiln.catalog import queue as jobs
from kiln.errors import KilnError
from kiln.executors.base import JobError
from kiln.executors.local import settings_dict
from kiln.executors.queue import TASK, conninfo, make_app
from kiln.executors.uploads import localize_recipe
from kiln.models import BuildRequest, QueuedAttempt
from kiln.readthrough import shared_store
from kiln.settings import Settings
from kiln.shippedlogs import LogShipping, own_log
from kiln.store import Store

log = logging.getLogger(__name__)
KILL_AFTER = 10.0  # seconds between SIGTERM and SIGKILL of an aborted build
SWEEP_LOCK = 0x6B696C6E  # advisory lock: one stalled-job sweeper at a time
DATABASE_TIMEOUT = 10.0  # seconds a database call waits for a connection before the worker stops
BACKOFF = (1.0, 30.0)  # seconds between tries to reach a lost database: first, doubling up to last


@dataclass(frozen=True)
class WorkerConfig:
    url: str
    settings: Settings
    data_dir: Path
    queue: str
    offer: Capabilities
    concurrency: int = 1
    stalled_after: float = 30.0  # seconds without heartbeat before a worker's jobs are recovered


class BuildJobFailed(KilnError):
    """The build ran and failed (recorded in the catalog); the job ends failed, without retry."""


async def _stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_AFTER)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _child_error(job_dir: Path, code: int) -> str:
    try:
        return JobError.model_validate_json((job_dir / "error.json").read_text()).message
    except (OSError, ValueError):
        return f"the build process exited with code {code}"


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.id = uuid.uuid4().hex
        self.store = Store.open(config.data_dir, config.settings)
        self.shared = shared_store(self.store)
        self.catalog: Catalog  # opened by run(), once the database answers
        self.opened = False
        self.app = self._make_app()
        self.stopping = asyncio.Event()
        self.running: Any = None  # the Procrastinate worker taking jobs now, if any

    def _make_app(self) -> Any:
        app = make_app(
            self.config.url,
            asynchronous=True,
            pool_timeout=DATABASE_TIMEOUT,
            concurrency=self.config.concurrency,
        )
        app.task(name=TASK, pass_context=True)(self.build)
        return app

    async def build(self, context: Any, build_id: str, request: dict[str, Any]) -> None:
        attempt = await asyncio.to_thread(jobs.claim, self.catalog, build_id, self.id)
        if attempt is None:
            return  # cancelled or finished meanwhile, or out of attempts (recorded by claim)
        queued = localize_recipe(BuildRequest.model_validate(request), self.store.home).model_copy(
            update={"data_dir": self.store.home, "queued": QueuedAttempt(build_id=build_id, attempt=attempt)}
        )
        job_dir = self.store.home / "jobs" / f"{build_id}-{attempt}"
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "request.json").write_text(queued.model_dump_json())
        (job_dir / "settings.json").write_text(json.dumps(settings_dict(self.config.settings)))
        shipping = None
        if self.shared is not None:  # the log, readable from any machine while the build runs
            locate = functools.partial(own_log, self.catalog, self.store.home, build_id)
            shipping = LogShipping(self.shared, build_id, attempt, locate)
        with open(job_dir / "worker.log", "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kiln.executors.local",
                str(job_dir),
                "--parent",
                str(os.getpid()),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=job_dir,
            )
        try:
            code = await proc.wait()
        except asyncio.CancelledError:  # abort requested (cancel) or the worker shuts down
            await _stop(proc)
            await asyncio.to_thread(jobs.cancelled, self.catalog, build_id, attempt)
            raise
        finally:
            if shipping is not None:
                shipping.ended.set()  # even if this task is cancelled again while it waits
                await asyncio.to_thread(shipping.finish)
        if code == 0:
            await asyncio.to_thread(jobs.end_attempt, self.catalog, build_id, attempt, "succeeded")
            return
        error = _child_error(job_dir, code)
        await asyncio.to_thread(jobs.end_attempt, self.catalog, build_id, attempt, "failed", error)
        raise BuildJobFailed(f"build {build_id} failed: {error}")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.stalled_after / 3)
            try:
                await asyncio.to_thread(jobs.worker_seen, self.catalog, self.id)
            except Exception as exc:  # the database is away: procrastinate's own loop notices too
                log.warning("worker heartbeat failed: %s", exc)

    async def _sweep(self) -> None:
        import psycopg

        while True:
            await asyncio.sleep(self.config.stalled_after / 2)
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(self.config.url), autocommit=True
                ) as conn:
                    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (SWEEP_LOCK,))
                    row = await cursor.fetchone()
                    if row and row[0]:
                        await self.recover_stalled()
            except Exception as exc:
                log.warning("stalled-job sweep failed: %s", exc)

    async def recover_stalled(self) -> list[str]:
        """Retry (or fail, attempts used up) the builds of workers that stopped heartbeating."""
        from procrastinate.jobs import Status

        manager = self.app.job_manager
        handled = []
        for job in await manager.get_stalled_jobs(
            seconds_since_heartbeat=self.config.stalled_after, task_name=TASK
        ):
            build_id = str(job.task_kwargs["build_id"])
            reason = f"worker lost (no heartbeat for {self.config.stalled_after:.0f}s)"
            if await asyncio.to_thread(jobs.requeue_lost, self.catalog, build_id, reason):
                await manager.retry_job(job)
            else:
                await manager.finish_job(job, status=Status.FAILED, delete_job=False)
            handled.append(build_id)
        return handled

    async def run(self) -> None:
        """Take jobs until SIGTERM/SIGINT. When the database goes away, Procrastinate's worker stops
        taking jobs and waits for the running build (which records its result if the database is
        back by then); this process then waits for the database with back-off and starts again."""
        from kiln.lifecycle.reclaim import reclaim_dead_scratch

        reclaim_dead_scratch(self.store)  # what a killed predecessor on this host left
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        side: list[asyncio.Task[None]] = []
        try:
            if not await self._open_catalog():
                return  # stopped while waiting for the database
            await asyncio.to_thread(
                jobs.register_worker,
                self.catalog,
                self.id,
                pid=os.getpid(),
                queue=self.config.queue,
                offer=self.config.offer,
                concurrency=self.config.concurrency,
            )
            side = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._sweep())]
            while not self.stopping.is_set():
                try:
                    await self._serve()
                except Exception as exc:  # the database (or the network to it) is away
                    if self.stopping.is_set():
                        break
                    log.warning("worker stopped taking jobs: %s", _first_line(exc))
                if self.stopping.is_set() or not await self._await_database():
                    break
                log.warning("the database answers again: taking jobs")
                self.app = self._make_app()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            for task in side:
                task.cancel()
            if self.opened:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(jobs.worker_seen, self.catalog, self.id, stopped=True)
                self.catalog.close()

    def stop(self) -> None:
        """SIGTERM/SIGINT: take no more jobs, let running builds finish, then exit."""
        self.stopping.set()
        if self.running is not None:
            self.running.stop()

    async def _serve(self) -> None:
        """One Procrastinate worker, until it is stopped or the database fails it."""
        from procrastinate.worker import Worker as ProcrastinateWorker

        self.running = ProcrastinateWorker(
            self.app,
            queues=queues_served(self.config.queue, self.config.offer),
            concurrency=self.config.concurrency,
            name=f"kiln-{self.id[:12]}",
            update_heartbeat_interval=self.config.stalled_after / 3,
            stalled_worker_timeout=self.config.stalled_after,
            abort_job_polling_interval=1.0,
            install_signal_handlers=False,  # ours: a stop during the back-off is a stop too
            wait=True,
        )
        try:
            async with self.app.open_async():
                await self.running.run()
        finally:
            self.running = None

    async def _open_catalog(self) -> bool:
        """Open the catalog once the database answers (a worker may well start before its database);
        False when stopped first."""
        while await self._await_database():
            try:
                self.catalog = await asyncio.to_thread(Catalog.open, self.config.url)
            except KilnError as exc:  # it went away again between the probe and the opening
                log.warning("%s", exc.message)
                await asyncio.sleep(BACKOFF[0])
                continue
            self.opened = True
            return True
        return False

    async def _await_database(self) -> bool:
        """Wait until the database answers, probing with back-off (:data:`BACKOFF`); False when the
        worker is stopped first (SIGTERM/SIGINT end the wait at once, even mid-probe)."""
        delay = BACKOFF[0]
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            while True:
                probe = asyncio.create_task(asyncio.to_thread(database_error, self.config.url))
                await asyncio.wait({probe, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if self.stopping.is_set():
                    return False
                error = probe.result()
                if error is None:
                    return True
                log.warning("database unreachable at %s: %s; retrying in %.0fs",
                            database_address(self.config.url), error, delay)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), delay)
                if self.stopping.is_set():
                    return False
                delay = min(delay * 2, BACKOFF[1])
        finally:
            stopping.cancel()


def database_address(url: str) -> str:
    """``HOST:PORT`` of a PostgreSQL catalog URL (libpq's defaults where it names none)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(conninfo(url))
    host = parsed.host or str(parsed.query.get("host") or "localhost")
    return f"{host}:{parsed.port or 5432}"


def database_error(url: str) -> str | None:
    """None when the database answers a query, else why not (one line)."""
    import psycopg

    try:
        with psycopg.connect(conninfo(url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def run_worker(config: WorkerConfig) -> None:
    asyncio.run(Worker(config).run())
