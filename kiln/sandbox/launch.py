"""Run one command in the sandbox: the seccomp filter, the network handshake, the environment.

:func:`kiln.sandbox.bwrap.sandbox_argv` says what bubblewrap must do; this module provides what it
inherits (the filter in a memfd, pasta's handshake pipes) and passes the step's environment as
bubblewrap's own (never in the argv), through the one subprocess gateway.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kiln.sandbox.bwrap import SandboxOptions, sandbox_argv, sandbox_env
from kiln.sandbox.network import NetworkFds, PastaNetwork
from kiln.sandbox.run import Completed, OutputCallback, run
from kiln.sandbox.seccomp_filter import filter_fd


@contextmanager
def _network(enabled: bool) -> Iterator[NetworkFds | None]:
    if not enabled:
        yield None
        return
    with PastaNetwork() as net:
        yield net.fds


def run_in_sandbox(
    root: Path,
    argv: Sequence[str],
    options: SandboxOptions = SandboxOptions(),
    *,
    timeout: float | None = None,
    on_output: OutputCallback | None = None,
    check: bool = True,
) -> Completed:
    """Run ``argv`` in ``root`` under bubblewrap (see :mod:`kiln.sandbox.bwrap`), like :func:`run`."""
    seccomp = filter_fd()
    try:
        with _network(options.network) as net:
            cmd = sandbox_argv(root, argv, options, seccomp_fd=seccomp, net=net)
            fds = (seccomp,) if net is None else (seccomp, net.info, net.block, net.resolv)
            return run(cmd, env=sandbox_env(options), pass_fds=fds, timeout=timeout, on_output=on_output,
                       check=check)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            os.close(seccomp)
