"""The local executor: each build in its own worker process on this host, never in the caller's.

``submit`` writes the request into a job directory and starts ``python -m kiln.executors.local JOB``;
the worker contains its process tree first (PID and mount namespaces, like ``kiln build``), then runs
:func:`kiln.build.run_build`, writing the build id into the job directory as soon as the build is
recorded, or its error if it failed before that. ``cancel`` sends SIGTERM, which ends the build the
way Ctrl-C does (recorded as failed, outputs removed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kiln.errors import KilnError, ValidationFailed
from kiln.executors.base import JobError, JobFailed, Submitted
from kiln.models import BuildRequest
from kiln.monitor import Event, Monitor
from kiln.sandbox.namespace import process_start
from kiln.settings import Settings
from kiln.store import Store

__all__ = ["JobError", "JobFailed", "LocalExecutor", "Submitted", "work"]

POLL_SECONDS = 0.05


def settings_dict(settings: Settings) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(settings), default=str))  # type: ignore[no-any-return]


def settings_from_dict(raw: dict[str, Any]) -> Settings:
    paths = {f.name for f in dataclasses.fields(Settings) if "Path" in str(f.type)}
    fields: dict[str, Any] = {k: Path(v) if k in paths and v is not None else v for k, v in raw.items()}
    return Settings(**fields)


class LocalExecutor:
    """Starts and cancels build workers for one data directory."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.jobs = store.home / "jobs"

    def submit(self, request: BuildRequest, *, wait: float = 60.0) -> Submitted:
        """Start a worker; return once its build is recorded (raise JobFailed if it ended first)."""
        job = uuid.uuid4().hex
        job_dir = self.jobs / job
        job_dir.mkdir(parents=True)
        (job_dir / "request.json").write_text(request.model_dump_json())
        (job_dir / "settings.json").write_text(json.dumps(settings_dict(self.settings)))
        self._queued(job, request)  # before the worker can record build.started
        with open(job_dir / "worker.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kiln.executors.local", str(job_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=job_dir,
            )  # fmt: skip
        (job_dir / "pid").write_text(f"{proc.pid} {process_start(proc.pid)}")
        threading.Thread(target=proc.wait, name=f"reap-{job[:8]}", daemon=True).start()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if (job_dir / "build").is_file():
                build_id = (job_dir / "build").read_text().strip()
                self._ship_log(proc, build_id)
                return Submitted(job=job, build_id=build_id)
            if proc.poll() is not None:
                if (job_dir / "build").is_file():
                    continue
                raise JobFailed(_job_error(job_dir, proc.returncode))
            time.sleep(POLL_SECONDS)
        raise KilnError(f"the build worker of job {job} did not start its build within {wait:.0f}s",
                        hint=f"see {job_dir / 'worker.log'}")  # fmt: skip

    def _ship_log(self, proc: subprocess.Popen[bytes], build_id: str) -> None:
        """With ``KILN_STORE_URL`` set, ship the build's log to the shared store while its process
        runs, as a queue worker does (kiln.shippedlogs), so any machine can read or follow it."""
        from kiln.catalog import Catalog
        from kiln.readthrough import shared_store
        from kiln.shippedlogs import LogShipping, own_log

        shared = shared_store(self.store)
        if shared is None:
            return
        catalog = Catalog(self.store.database_url)
        shipping = LogShipping(shared, build_id, 1, lambda: own_log(catalog, self.store.home, build_id))

        def until_exit() -> None:
            proc.wait()
            shipping.finish()
            catalog.close()

        threading.Thread(target=until_exit, name=f"ship-end-{build_id[:8]}", daemon=True).start()

    def _queued(self, job: str, request: BuildRequest) -> None:
        """The ``build.queued`` event (the worker records ``build.started`` with the build id)."""
        from kiln.catalog import Catalog
        from kiln.events.emit import emit
        from kiln.events.model import build_queued

        with Catalog.open(self.store.database_url) as catalog:
            emit(catalog, build_queued(job, str(request.recipe.path), request.requester))

    def cancel(self, build_id: str) -> bool:
        """SIGTERM the worker of ``build_id``; False when no worker of this executor runs it."""
        if not self.jobs.is_dir():
            return False
        for job_dir in self.jobs.iterdir():
            marker = job_dir / "build"
            if marker.is_file() and marker.read_text().strip() == build_id:
                try:
                    pid, started = (job_dir / "pid").read_text().split()
                    if str(process_start(pid)) != started:
                        return False  # the worker is gone (its pid may belong to another process now)
                    os.kill(int(pid), signal.SIGTERM)
                except (ProcessLookupError, FileNotFoundError, ValueError):
                    return False
                (job_dir / "cancelled").write_text("")
                return True
        return False


def _job_error(job_dir: Path, code: int | None) -> JobError:
    try:
        return JobError.model_validate_json((job_dir / "error.json").read_text())
    except (OSError, ValueError):
        tail = (job_dir / "worker.log").read_text(errors="replace")[-2000:]
        return JobError(message=f"the build worker exited with code {code} before the build started",
                        hint=tail.strip() or None)  # fmt: skip


class _BuildIdMonitor(Monitor):
    """Writes the build id into the job directory on the first event that carries it."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.written = False

    def emit(self, event: Event) -> None:
        if not self.written and event.build:
            tmp = self.job_dir / "build.tmp"
            tmp.write_text(event.build)
            tmp.rename(self.job_dir / "build")
            self.written = True


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` (a ``kiln worker``) dies, so a killed worker leaves no build
    running on its host (the build's PID namespace ends with this process's supervisor)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(70)


def work(job_dir: Path) -> int:
    """The worker process: contain, build, report. Returns the exit code."""
    from kiln.build import run_build
    from kiln.sandbox.namespace import contain_process_tree

    settings = settings_from_dict(json.loads((job_dir / "settings.json").read_text()))
    request = BuildRequest.model_validate_json((job_dir / "request.json").read_text())
    contain_process_tree(settings.private_namespaces)  # before any thread: nothing outlives the build
    monitor = _BuildIdMonitor(job_dir)
    try:
        # No environment for env: secrets: an API caller must not read the server's variables.
        run_build(request, monitor=monitor, settings=settings, environ={})
    except KilnError as exc:
        if not monitor.written:
            issues = [str(i) for i in exc.issues] if isinstance(exc, ValidationFailed) else None
            error = JobError(message=exc.message, hint=exc.hint, issues=issues)
            (job_dir / "error.json").write_text(error.model_dump_json())
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--parent":
        die_with_parent(int(sys.argv[3]))
    sys.exit(work(Path(sys.argv[1])))
