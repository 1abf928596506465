"""The real ``kiln`` CLI run as a subprocess by the tests that drive it end to end."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KILN = REPO / ".venv/bin/kiln"


@dataclass(frozen=True)
class KilnRun:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def kiln(
    *args: str,
    home: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    check: bool = True,
    code: int = 0,
    timeout: float | None = None,
) -> KilnRun:
    """Run ``kiln ARGS`` with ``home`` as its data dir (the caller's KILN_DATABASE_URL dropped; ``env``
    may set one) and its output captured. ``check``: fail the test unless it exits with ``code``."""
    full = {**os.environ, "KILN_HOME": str(home)}
    full.pop("KILN_DATABASE_URL", None)
    full.update(env or {})
    proc = subprocess.run(
        [str(KILN), *args], capture_output=True, text=True, env=full, cwd=cwd, input=input, timeout=timeout
    )
    if check and proc.returncode != code:
        raise AssertionError(
            f"kiln {' '.join(args)} exited {proc.returncode}, not {code}:\n{proc.stdout}\n{proc.stderr}"
        )
    return KilnRun(proc.returncode, proc.stdout, proc.stderr)
