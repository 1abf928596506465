"""The one gateway for subprocesses: argv lists only, logged, with a timeout that kills the whole tree.

On failure the exact command and the tail of its output are shown so the user can rerun it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kiln.errors import CommandFailed, KilnError, ToolMissing

log = logging.getLogger("kiln.run")

OutputCallback = Callable[[str, str], None]
"""Called with (stream, line) for each line of output; stream is "stdout" or "stderr"."""

TAIL_LINES = 40

# Debian package providing each system tool, for "tool missing" hints.
TOOL_PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "bwrap": "bubblewrap",
    "skopeo": "skopeo",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "oscap": "openscap-scanner",
    "oscap-chroot": "openscap-scanner",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
    "umoci": "umoci",
    "docker-registry": "docker-registry",
}


class CommandTimedOut(KilnError):
    """A command ran past its timeout and was killed with its process tree."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        super().__init__(f"command timed out after {timeout:g}s and was killed: {shlex.join(argv)}")


@dataclass
class Completed:
    """What a finished command produced."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def tail(self) -> str:
        lines = (self.stdout + self.stderr).splitlines()
        return "\n".join(lines[-TAIL_LINES:])


def require_tool(tool: str) -> str:
    """Absolute path of a system tool, or a clear error naming the Debian package."""
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise ToolMissing(tool, TOOL_PACKAGES.get(tool, tool))
    return found


def loggable(args: Sequence[str]) -> list[str]:
    """``args`` for a log line: environment values given on a command line (``--setenv NAME VALUE``)
    shown as ``***``; only names are logged, values may be credentials."""
    out = list(args)
    for i, arg in enumerate(out[:-2]):
        if arg == "--setenv":
            out[i + 2] = "***"
    return out


def _pump(stream: IO[bytes], name: str, sink: list[str], tail: deque[str], cb: OutputCallback | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        sink.append(line)
        tail.append(line.rstrip("\n"))
        if cb is not None:
            cb(name, line.rstrip("\n"))
    stream.close()


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    on_output: OutputCallback | None = None,
    pass_fds: Sequence[int] = (),
) -> Completed:
    """Run ``argv`` in its own process group; stream output to ``on_output``; kill the tree on timeout.

    ``check=True`` raises :class:`CommandFailed` with the argv and the output tail on a non-zero exit.
    ``pass_fds`` are inherited by the child (the sandbox's seccomp filter and network handshake).
    Ctrl-C kills the child's whole process group before propagating.
    """
    args = [os.fspath(a) for a in argv]
    if log.isEnabledFor(logging.DEBUG):
        names = f" (environment: {' '.join(sorted(env))})" if env is not None else ""
        log.debug("run: %s%s", shlex.join(loggable(args)), names)
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    out: list[str] = []
    err: list[str] = []
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, "stdout", out, tail, on_output), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, "stderr", err, tail, on_output), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        if input is not None:
            assert proc.stdin is not None
            proc.stdin.write(input)
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            for t in threads:
                t.join(timeout=5)
            raise CommandTimedOut(args, timeout or 0) from None
    except BaseException:
        if proc.returncode is None:
            _kill_tree(proc)
        raise
    finally:
        # Descendants that outlived the leader (daemonised helpers) die with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    for t in threads:
        t.join(timeout=5)
    result = Completed(args, proc.returncode, "".join(out), "".join(err), time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, "\n".join(tail))
    return result
