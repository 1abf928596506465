"""The build sandbox: bubblewrap with its own mount, PID, IPC and UTS namespaces.

The image root is bind-mounted as ``/``; ``/proc``, ``/dev`` and a 1777 tmpfs ``/tmp`` are fresh
(targets may bind the image's own ``/tmp`` over it); network is shared (package installs) unless
switched off. Dangerous capabilities are dropped so a step cannot remount its way out of the root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln.sandbox.run import require_tool

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DROPPED_CAPS = ("CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_RAWIO")


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside the sandbox."""

    source: Path
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class SandboxOptions:
    network: bool = True
    hostname: str = "kiln"
    env: Mapping[str, str] = field(default_factory=dict)
    binds: Sequence[Bind] = ()
    cwd: str = "/"
    secrets_dir: Path | None = None  # host tmpfs bound read-only at /run/secrets (kiln.secrets)


def base_env() -> dict[str, str]:
    """The environment every step starts from (the host's is never leaked in)."""
    return {
        "PATH": DEFAULT_PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "DEBIAN_FRONTEND": "noninteractive",
        "container": "kiln",
    }


def sandbox_argv(root: Path, argv: Sequence[str], options: SandboxOptions = SandboxOptions()) -> list[str]:
    """Full bwrap command line running ``argv`` inside ``root``."""
    cmd = [
        require_tool("bwrap"),
        "--bind", str(root), "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--hostname", options.hostname,
        "--die-with-parent", "--new-session",
        "--clearenv",
    ]  # fmt: skip
    if options.secrets_dir is not None:  # on a fresh /run: the mount point leaves no trace in a layer
        cmd += ["--perms", "0755", "--tmpfs", "/run", "--perms", "1777", "--dir", "/run/lock"]
        cmd += ["--ro-bind", str(options.secrets_dir), "/run/secrets"]
    for cap in DROPPED_CAPS:
        cmd += ["--cap-drop", cap]
    if options.network:
        resolv = root / "etc/resolv.conf"
        if resolv.is_file() and not resolv.is_symlink() and Path("/etc/resolv.conf").exists():
            cmd += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    else:
        cmd.append("--unshare-net")
    for bind in options.binds:
        cmd += ["--ro-bind" if bind.readonly else "--bind", str(bind.source), bind.target]
    env = base_env() | dict(options.env)
    for key, value in sorted(env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", options.cwd, "--", *argv]
    return cmd
