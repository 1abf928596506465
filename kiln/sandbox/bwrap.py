"""The build sandbox's command line: bubblewrap, as strict as a default OCI runtime.

Own mount, PID, IPC, UTS and network namespaces; the image root bind-mounted as ``/`` (nodev,
nosuid, as every bubblewrap bind); fresh ``/proc`` with runc's read-only and masked paths, a
minimal ``/dev``, an empty read-only ``/sys`` and a 1777 tmpfs ``/tmp`` (targets may bind the
image's own ``/tmp`` over it); Docker's default capabilities; no_new_privs and Docker's default
seccomp filter (:mod:`kiln.sandbox.seccomp_filter`). Network on is a namespace of its own connected
by pasta (:mod:`kiln.sandbox.network`); off is loopback only. The step's environment is not in the
argv (it would show in logs and the process list): :func:`kiln.sandbox.launch.run_in_sandbox`
passes it as bubblewrap's own environment. docs/security.md explains each choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln.sandbox.network import NetworkFds
from kiln.sandbox.run import require_tool

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default capability set (moby's oci/caps defaults); everything else is dropped.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_MKNOD", "CAP_AUDIT_WRITE",
)  # fmt: skip
# runc's default read-only and masked paths (only those the running kernel has are touched).
PROC_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
PROC_MASKED = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
)  # fmt: skip


@dataclass(frozen=True)
class Bind:
    """A host path made visible inside the sandbox (read-only unless it must be written).

    ``cow``: a cache shared between builds; steps see it through :func:`kiln.sandbox.cachebind.cache_views`
    (a private copy-on-write view), never directly.
    """

    source: Path
    target: str
    readonly: bool = True
    cow: bool = False


@dataclass(frozen=True)
class SandboxOptions:
    """How one sandboxed process runs. ``env`` reaches the process through its environment only."""

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


def sandbox_env(options: SandboxOptions) -> dict[str, str]:
    """The complete environment of the sandboxed process (bubblewrap passes its own on)."""
    return base_env() | dict(options.env)


def _proc_confinement() -> list[str]:
    cmd: list[str] = []
    for path in PROC_READONLY:
        if Path(path).exists():
            cmd += ["--ro-bind", path, path]
    for path in PROC_MASKED:
        if Path(path).is_dir():
            cmd += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
        elif Path(path).exists():
            cmd += ["--ro-bind", "/dev/null", path]
    return cmd


def _resolv_conf(root: Path, net: NetworkFds | None) -> list[str]:
    """The step's resolv.conf names pasta's DNS forwarder, over the image's own regular file."""
    resolv = root / "etc/resolv.conf"
    if net is None or resolv.is_symlink() or not resolv.is_file():
        return []
    # 0644: apt resolves names as its unprivileged _apt user
    return ["--perms", "0644", "--ro-bind-data", str(net.resolv), "/etc/resolv.conf"]


def sandbox_argv(root: Path, argv: Sequence[str], options: SandboxOptions = SandboxOptions(), *,
                 seccomp_fd: int, net: NetworkFds | None = None) -> list[str]:  # fmt: skip
    """Full bwrap command line running ``argv`` inside ``root``.

    ``seccomp_fd`` holds the compiled filter; ``net`` the descriptors of the pasta handshake when
    ``options.network`` is on. Use :func:`kiln.sandbox.launch.run_in_sandbox`, which provides both.
    """
    if options.network and net is None:
        raise ValueError("network on needs the pasta handshake descriptors")
    cmd = [
        require_tool("bwrap"),
        "--bind", str(root), "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "0555", "--tmpfs", "/sys", "--remount-ro", "/sys",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--hostname", options.hostname,
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",
    ]  # fmt: skip
    if options.secrets_dir is not None:  # on a fresh /run: the mount point leaves no trace in a layer
        cmd += ["--perms", "0755", "--tmpfs", "/run", "--perms", "1777", "--dir", "/run/lock"]
        cmd += ["--ro-bind", str(options.secrets_dir), "/run/secrets"]
    for cap in CAPABILITIES:
        cmd += ["--cap-add", cap]
    cmd += _proc_confinement()
    if options.network and net is not None:
        cmd += ["--info-fd", str(net.info), "--block-fd", str(net.block)]
        cmd += _resolv_conf(root, net)
    for bind in options.binds:
        if bind.cow:
            raise ValueError(f"shared cache {bind.source} needs a copy-on-write view (cache_views)")
        cmd += ["--ro-bind" if bind.readonly else "--bind", str(bind.source), bind.target]
    cmd += ["--seccomp", str(seccomp_fd), "--chdir", options.cwd, "--", *argv]
    return cmd
