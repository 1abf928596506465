"""The local executor signals only the worker it started, never a process that reused its pid."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kiln.executors.local import LocalExecutor
from kiln.sandbox.namespace import process_start
from kiln.settings import Settings
from kiln.store import Store


def test_cancel_checks_the_process_start_time(tmp_path: Path) -> None:
    executor = LocalExecutor(Store.open_at(tmp_path, tmp_path / "cache"), Settings())
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        job = tmp_path / "jobs" / "j1"
        job.mkdir(parents=True)
        (job / "build").write_text("b" * 32)
        (job / "pid").write_text(f"{sleeper.pid} {process_start(sleeper.pid) + 1}")  # a different process
        assert executor.cancel("b" * 32) is False
        assert sleeper.poll() is None
        assert executor.cancel("c" * 32) is False  # no such job
        (job / "pid").write_text(f"{sleeper.pid} {process_start(sleeper.pid)}")
        assert executor.cancel("b" * 32) is True
        assert sleeper.wait(10) == -15
    finally:
        sleeper.kill()
        sleeper.wait()
