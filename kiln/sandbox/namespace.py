"""Contain a Kiln command's whole process tree, so nothing it started outlives it.

Kiln stops everything it starts when a command ends, however it ends; a process killed with SIGKILL
cannot. So commands that start long-lived helpers (``kiln build``: mmdebstrap, the sandbox, qemu;
``kiln test``: qemu) run the rest of their work as PID 1 of a new PID namespace, in a private mount
namespace:

- when that process dies, however it dies, the kernel kills every process left in its namespace
  (qemu and mmdebstrap included, whatever session or process group they made for themselves) and
  drops every mount;
- the process that was started stays outside as a small supervisor: it forwards signals, exits with
  the worker's status, and if it is itself killed the worker gets SIGKILL (``PR_SET_PDEATHSIG``),
  taking the namespace with it.

Must be entered before any thread starts (``unshare(CLONE_NEWNS)`` fails in a multi-threaded process,
and ``fork`` would copy only the calling thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_PDEATHSIG = 1
SI_KERNEL = 0x80  # si_code of signals the kernel sends itself, e.g. a terminal's Ctrl-C to its group
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _wanted(enabled: bool) -> bool:
    """``enabled`` False (``KILN_MOUNT_NAMESPACE=host``) keeps the command in the host's namespaces."""
    return enabled and os.geteuid() == 0


def _make_mounts_private() -> None:
    if _libc().mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        log.debug("making / private failed: %s", os.strerror(ctypes.get_errno()))


def enter_private_mount_namespace(enabled: bool = True) -> bool:
    """Unshare the mount namespace only; returns False (and logs why) when it is not possible."""
    if not _wanted(enabled):
        return False
    if _libc().unshare(CLONE_NEWNS) != 0:
        log.debug("unshare(CLONE_NEWNS) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    _make_mounts_private()
    return True


def contain_process_tree(enabled: bool = True) -> bool:
    """Continue this command as PID 1 of a new PID namespace inside a private mount namespace.

    Returns True in the worker (the caller goes on with its work there); the original process never
    returns: it supervises the worker and exits with its status. Returns False, changing nothing but
    the mount namespace where that is possible, when a PID namespace cannot be made. ``enabled``
    False (the settings' ``private_namespaces``, ``KILN_MOUNT_NAMESPACE=host``) changes nothing.
    """
    if not _wanted(enabled):
        return False
    if _libc().unshare(CLONE_NEWNS | CLONE_NEWPID) != 0:
        log.debug("unshare(CLONE_NEWPID) failed: %s", os.strerror(ctypes.get_errno()))
        return enter_private_mount_namespace()
    _make_mounts_private()
    sys.stdout.flush()
    sys.stderr.flush()
    alive_r, alive_w = os.pipe()  # closed by the kernel when the supervisor dies
    worker = os.fork()
    if worker == 0:
        os.close(alive_w)
        _become_worker(alive_r)
        return True
    os.close(alive_r)
    _supervise(worker)


def _become_worker(alive_r: int) -> None:
    global _host_identity, _host_proc
    if _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(70)
    _host_identity = _read_host_identity()
    _host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)  # liveness checks of other builds
    # A /proc of this PID namespace: PIDs the build sees (bwrap's child, qemu's pid file) name the
    # same processes in /proc. Only this private mount namespace sees it.
    if _libc().mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        log.debug("mounting /proc for the PID namespace failed: %s", os.strerror(ctypes.get_errno()))
    os.set_blocking(alive_r, False)
    try:
        if os.read(alive_r, 1) == b"":  # the supervisor died before PR_SET_PDEATHSIG took effect
            os._exit(70)
    except BlockingIOError:
        pass
    os.close(alive_r)
    # PID 1 ignores signals it has no handler for: give the ones that should stop a build a handler
    # that ends it the way Ctrl-C does (cleanup runs); a second one while cleaning up is ignored.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt_once)


def _interrupt_once(signum: int, frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def _supervise(worker: int) -> NoReturn:
    """Forward signals to ``worker`` until it ends, then end the same way."""
    watched = {*FORWARDED, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo == signal.SIGCHLD:
            pid, status = os.waitpid(worker, os.WNOHANG)
            if pid == worker:
                break
        elif info.si_signo == signal.SIGINT and info.si_code == SI_KERNEL:
            continue  # a terminal's Ctrl-C reaches the worker too: it is in the same process group
        else:
            os.kill(worker, info.si_signo)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: die of the same one, as a shell expects
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF if code >= 0 else 128 - code)


_host_proc: int | None = None  # the host's /proc, kept open by a contained worker before it mounts its own


def _read_host_proc(relative: str) -> str:
    """A file of the host's /proc (other builds' processes are visible there, not in a worker's own)."""
    if _host_proc is None:
        return (Path("/proc") / relative).read_text()
    fd = os.open(relative, os.O_RDONLY, dir_fd=_host_proc)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def process_start(pid: int | str) -> int | None:
    """Start time of a running process of the host in clock ticks since boot, or None if it ended."""
    try:
        stat = _read_host_proc(f"{pid}/stat")
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has ended; its parent just has not reaped it yet
        return None
    return int(fields[19])  # field 22 overall


_host_identity: tuple[int, int | None] | None = None  # set in the worker before /proc shows its namespace


def _read_host_identity() -> tuple[int, int | None]:
    try:
        pid = int(Path("/proc/self").readlink().name)
    except (OSError, ValueError):
        pid = os.getpid()
    return pid, process_start("self")


def host_identity() -> tuple[int, int | None]:
    """This process's (PID, start time) as the host sees them, also inside :func:`contain_process_tree`
    (where ``os.getpid()`` is 1 and /proc shows the build's own PID namespace)."""
    return _host_identity or _read_host_identity()


def host_pid() -> int:
    return host_identity()[0]
