"""Put Kiln's test unit into the copy-on-write overlay of a disk, never into the disk itself.

``qemu-storage-daemon`` exports the qcow2 overlay as a raw file over FUSE (no nbd module, no loop
device, no mount of the guest file system); ``debugfs`` writes the unit and its
``multi-user.target.wants`` link into the ext4 root partition through that file. Writes land in the
overlay only; the daemon is stopped (and its FUSE mount gone) before qemu boots the overlay.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.errors import KilnError
from kiln.outputs.ext4 import debugfs
from kiln.outputs.gpt import read_partitions, root_partition
from kiln.sandbox.run import require_tool, run

UNIT = "/etc/systemd/system/kiln-test.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"


@contextmanager
def raw_view(overlay: Path, scratch: Path) -> Iterator[Path]:
    """A writable raw view of the qcow2 ``overlay`` (a FUSE-exported file), removed on exit."""
    mountpoint = scratch / "overlay.raw"
    mountpoint.touch()
    pidfile = scratch / "qsd.pid"
    run([require_tool("qemu-storage-daemon"), "--daemonize", "--pidfile", str(pidfile),
         "--blockdev", f"driver=file,node-name=file0,filename={overlay}",
         "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
         "--export", f"type=fuse,id=exp0,node-name=disk0,mountpoint={mountpoint},writable=on"],
        timeout=60)  # fmt: skip
    try:
        yield mountpoint
    finally:
        _stop_daemon(pidfile, mountpoint)


def _stop_daemon(pidfile: Path, mountpoint: Path) -> None:
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        pid = 0
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)  # the daemon flushes the overlay and unmounts its export
        except ProcessLookupError:
            pid = 0
    deadline = time.monotonic() + 20
    while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    if _is_mounted(mountpoint):
        run([require_tool("umount"), "-l", str(mountpoint)], check=False)


def _is_mounted(path: Path) -> bool:
    target = os.fspath(path)
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == target for line in fh if len(line.split()) > 1)


def inject_unit(overlay: Path, unit_text: str, scratch: Path) -> None:
    """Add the test unit (enabled for multi-user.target) to the root file system inside ``overlay``."""
    with raw_view(overlay, scratch) as raw:
        root = root_partition(read_partitions(raw))
        target = f"{raw}?offset={root.start}"
        probe = run([require_tool("debugfs"), "-R", "features", target], check=False)
        if "Filesystem features:" not in probe.stdout:
            raise KilnError("VM tests need an ext4 root partition; debugfs cannot read this one:\n"
                            + probe.stderr.strip())  # fmt: skip
        if "needs_recovery" in probe.stdout:
            raise KilnError("the disk's root file system was not shut down cleanly (journal needs recovery)")
        wants = run([require_tool("debugfs"), "-R", f"stat {WANTS}", target], check=False)
        staged = scratch / "kiln-test.service"
        staged.write_text(unit_text)
        staged.chmod(0o644)
        commands = [] if "Inode:" in wants.stdout else [f"mkdir {WANTS}"]
        commands += [f"write {staged} {UNIT}", f"symlink {WANTS}/kiln-test.service {UNIT}"]
        debugfs(raw, root.start, commands, scratch)
