"""The steps' seccomp filter: Docker's default profile, for the capabilities steps keep.

Built as an allowlist like Docker's: every x86-64 system call libseccomp knows is allowed except
:data:`DENIED` (the calls Docker's default profile leaves out for a container without
``CAP_SYS_ADMIN``, ``CAP_SYS_MODULE``, ``CAP_SYS_BOOT``, ... plus ``name_to_handle_at``), which
fail with ``EPERM`` as in Docker. ``clone`` is allowed without namespace flags only, ``clone3``
fails with ``ENOSYS`` (libc then falls back to ``clone``, whose flags the filter can see),
``socket`` refuses ``AF_VSOCK`` and ``personality`` takes the values Docker allows. A system call
newer than this libseccomp fails with ``ENOSYS`` (as runc does), so libc's fallbacks work. Other
ABIs (32-bit x86, x32) get ``EPERM`` for every call: steps run 64-bit programs only.

The filter is compiled once per process with libseccomp's Python bindings (Debian's
``python3-seccomp``) and handed to bubblewrap as BPF through a memfd (``--seccomp FD``).
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import os
import sysconfig
from pathlib import Path
from types import ModuleType

from kiln.errors import ToolMissing

DEBIAN_SITE = Path("/usr/lib/python3/dist-packages")

# Grouped by what they would give a step; every name is refused with EPERM.
DENIED: dict[str, tuple[str, ...]] = {
    "file handles (open any file of a mounted file system)": ("open_by_handle_at", "name_to_handle_at"),
    "mounts and namespaces": (
        "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
        "open_tree", "mount_setattr", "unshare", "setns",
    ),
    "kernel code, modules and reboot": (
        "init_module", "finit_module", "delete_module", "create_module", "query_module",
        "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "uselib",
    ),
    "kernel interfaces with a history of exploits": (
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
        "io_uring_register", "fanotify_init", "lookup_dcookie",
    ),
    "the kernel keyring (shared with the host)": ("keyctl", "add_key", "request_key"),
    "other processes' memory and files": ("kcmp", "pidfd_getfd", "process_madvise"),
    "host-wide state": (
        "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "syslog", "_sysctl",
        "quotactl", "quotactl_fd", "sethostname", "setdomainname", "vhangup", "iopl", "ioperm",
        "nfsservctl",
    ),
    "NUMA memory policy": (
        "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "migrate_pages",
        "move_pages",
    ),
    "obsolete or unimplemented": (
        "afs_syscall", "getpmsg", "putpmsg", "security", "tuxcall", "vserver", "sysfs", "ustat",
    ),
}  # fmt: skip
DENIED_NAMES = frozenset(name for names in DENIED.values() for name in names)

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
AF_VSOCK = 40
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # LINUX, UNAME26 and READ_IMPLIES_EXEC forms, query
SPECIAL = frozenset({"clone", "clone3", "socket", "personality"})
MAX_SYSCALL = 1024


def libseccomp() -> ModuleType:
    """libseccomp's Python module: importable directly, or Debian's build for this interpreter's ABI
    (a virtual environment does not see ``/usr/lib/python3/dist-packages``)."""
    try:
        return importlib.import_module("seccomp")
    except ImportError:
        pass
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    path = DEBIAN_SITE / f"seccomp{suffix}"
    spec = importlib.util.spec_from_file_location("seccomp", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ToolMissing("seccomp (Python bindings of libseccomp)", "python3-seccomp")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def known_syscalls(sc: ModuleType) -> set[str]:
    """Names of every x86-64 system call this libseccomp knows."""
    names = set()
    for number in range(MAX_SYSCALL):
        try:
            names.add(sc.resolve_syscall(sc.Arch.X86_64, number).decode())
        except ValueError:
            continue
    return names


@functools.cache
def filter_bpf() -> bytes:
    """The compiled filter (classic BPF, as ``seccomp(2)`` and ``bwrap --seccomp`` take it)."""
    sc = libseccomp()
    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ERRNO(errno.ENOSYS))
    flt.set_attr(sc.Attr.ACT_BADARCH, eperm)
    for name in sorted(known_syscalls(sc) - DENIED_NAMES - SPECIAL):
        flt.add_rule(sc.ALLOW, name)
    for name in sorted(DENIED_NAMES):
        flt.add_rule(eperm, name)
    all_ns = sum(CLONE_NAMESPACE_FLAGS.values())
    flt.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, all_ns, 0))
    for flag in CLONE_NAMESPACE_FLAGS.values():
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 gets the default action, ENOSYS (libseccomp refuses a rule equal to the default).
    flt.add_rule(sc.ALLOW, "socket", sc.Arg(0, sc.NE, AF_VSOCK))
    flt.add_rule(eperm, "socket", sc.Arg(0, sc.EQ, AF_VSOCK))
    for value in PERSONALITIES:
        flt.add_rule(sc.ALLOW, "personality", sc.Arg(0, sc.EQ, value))
    with os.fdopen(os.memfd_create("kiln-seccomp-export", os.MFD_CLOEXEC), "w+b") as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()


def filter_fd() -> int:
    """A file descriptor holding the filter, positioned at its start; the caller closes it."""
    fd = os.memfd_create("kiln-seccomp", os.MFD_CLOEXEC)
    os.write(fd, filter_bpf())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
