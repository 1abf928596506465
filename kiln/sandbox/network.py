"""Network for a sandbox that has it: its own network namespace, connected by pasta.

bubblewrap creates the namespace (``--unshare-net``), tells its host-side PID through
``--info-fd``, sets up loopback and waits on ``--block-fd``; a helper thread then starts ``pasta``
(Debian's ``passt``) attached to that namespace, waits until the namespace has its routes, and
lets the step start. pasta copies the host's addresses and routes into the namespace and relays TCP, UDP and
ICMP through ordinary sockets of its own: the step never sees the host's interfaces, cannot
configure them, and gets no port forwarded either way (``-t/-u/-T/-U none``); the gateway address
is the real gateway, not the host's loopback (``--no-map-gw``). DNS queries sent to
:data:`DNS_ADDRESS` go to the host's resolver, and the step's ``/etc/resolv.conf`` names it.

pasta runs in the foreground as a child of the helper thread, with ``PR_SET_PDEATHSIG``: it dies
with the step (killed when the step ends) and with Kiln (even a SIGKILL of Kiln).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from kiln.errors import KilnError
from kiln.sandbox.run import require_tool

DNS_ADDRESS = "169.254.1.1"
RESOLV_CONF = f"# written by Kiln: DNS is forwarded to the host's resolver\nnameserver {DNS_ADDRESS}\n"
READY_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1


class NetworkSetupFailed(KilnError):
    """pasta could not connect a sandbox's network namespace."""


@dataclass(frozen=True)
class NetworkFds:
    """The descriptors bubblewrap inherits: where it writes its info, waits, and reads resolv.conf."""

    info: int
    block: int
    resolv: int


def pasta_argv(netns_fd: int) -> list[str]:
    """pasta joining the namespace open at ``netns_fd`` (opened by Kiln: pasta, root without
    capabilities by then, may not open a namespace of bubblewrap's non-dumpable child itself)."""
    return [
        require_tool("pasta"), "--config-net", "-q", "-f",
        "--runas", "0",  # as nobody it cannot join a root-owned namespace; it drops its capabilities itself
        "--no-map-gw", "-t", "none", "-u", "none", "-T", "none", "-U", "none",
        "--dns-forward", DNS_ADDRESS,
        "--netns", f"/proc/self/fd/{netns_fd}", "--netns-only",
    ]  # fmt: skip


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _default_routes(net_dir: str) -> tuple[bool, bool]:
    """(IPv4, IPv6) default route present, from ``/proc/.../net/route`` and ``ipv6_route``."""
    v4 = v6 = False
    with contextlib.suppress(OSError), open(f"{net_dir}/route", encoding="ascii") as fh:
        v4 = any(line.split()[1:2] == ["00000000"] for line in fh.readlines()[1:])
    with contextlib.suppress(OSError), open(f"{net_dir}/ipv6_route", encoding="ascii") as fh:
        v6 = any(line.startswith("0" * 32 + " 00 ") for line in fh)
    return v4, v6


class PastaNetwork:
    """Context manager giving one bubblewrap run its own pasta-connected network namespace."""

    def __init__(self) -> None:
        self._info_r, info_w = os.pipe()
        block_r, self._block_w = os.pipe()
        resolv_r, resolv_w = os.pipe()
        os.write(resolv_w, RESOLV_CONF.encode())
        os.close(resolv_w)
        self.fds = NetworkFds(info_w, block_r, resolv_r)
        self._stop = threading.Event()
        self._error: str | None = None
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kiln-pasta", daemon=True)

    def __enter__(self) -> PastaNetwork:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._released.wait()
        for fd in (self._info_r, self._block_w, self.fds.info, self.fds.block, self.fds.resolv):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._error is not None and exc_type is None:
            raise NetworkSetupFailed(
                f"network for the sandbox: {self._error}",
                hint="check that passt is installed and the host has a default route, "
                "or set settings.network: false",
            )

    def _child_pid(self) -> int | None:
        """bubblewrap's info (JSON with the sandbox's host-side PID), or None when it ended first."""
        data = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._info_r], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(self._info_r, 4096)
            if not chunk:
                return None
            data += chunk
            with contextlib.suppress(ValueError):
                return int(json.loads(data)["child-pid"])
        return None

    def _serve(self) -> None:
        try:
            self._run_pasta()
        finally:
            self._released.set()

    def _run_pasta(self) -> None:
        pid = self._child_pid()
        if pid is None:
            return
        wanted = _default_routes("/proc/net")
        # bubblewrap configures the namespace's loopback before it blocks; pasta configures it too,
        # and the loser of that race fails (EEXIST). Start pasta once bubblewrap waits on block-fd.
        if not self._wait_blocked(pid):
            return
        try:
            netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:  # the sandbox ended already
            self._error = f"cannot open the sandbox's network namespace: {exc.strerror}"
            return
        try:
            # The thread lives until the step ends, so PR_SET_PDEATHSIG (tied to it) fires only
            # when Kiln itself dies.
            pasta = subprocess.Popen(
                pasta_argv(netns),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(netns,),
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(netns)
        try:
            if self._wait_ready(pid, wanted, pasta):
                os.write(self._block_w, b"1")
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._stop.wait()
        finally:
            pasta.kill()
            if self._error is not None:
                _, err = pasta.communicate()
                lines = [x for x in err.decode(errors="replace").splitlines() if "syslog" not in x]
                self._error += (": " + " / ".join(lines[-5:])) if lines else ""
            # The step may go on at once: the kernel tears pasta's tap and namespace down in tens of
            # milliseconds, and this thread reaps it meanwhile.
            self._released.set()
            pasta.communicate()

    def _wait_blocked(self, pid: int) -> bool:
        """Wait until bubblewrap's child sits in ``read(block_fd)`` (``/proc/PID/syscall``)."""
        blocked = f"0 {hex(self.fds.block)} "
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                with open(f"/proc/{pid}/syscall", encoding="ascii") as fh:
                    if fh.read().startswith(blocked):
                        return True
            except OSError:
                return False  # the sandbox ended (bubblewrap failed before blocking)
            time.sleep(0.0005)
        if not self._stop.is_set():
            self._error = "bubblewrap did not reach its network handshake"
        return False

    def _wait_ready(self, pid: int, wanted: tuple[bool, bool], pasta: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self._stop.is_set():
            if pasta.poll() is not None:
                self._error = f"pasta exited with status {pasta.returncode}"
                return False
            have = _default_routes(f"/proc/{pid}/net")
            if all(h or not w for h, w in zip(have, wanted, strict=True)):
                return True
            time.sleep(0.001)
        if not self._stop.is_set():
            self._error = f"pasta did not configure the network within {READY_TIMEOUT:g} s"
        return False
