"""A private mount namespace for the Kiln process, so its overlay mounts die with it.

Kiln unmounts everything it mounts when a build ends, however it ends; a process killed with
SIGKILL cannot, so builds also run in their own mount namespace (with private propagation): the
kernel drops every mount in it when the last process leaves. Must be entered before any thread
starts (``unshare(CLONE_NEWNS)`` fails in a multi-threaded process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def enter_private_mount_namespace() -> bool:
    """Unshare the mount namespace; returns False (and logs why) when it is not possible.

    ``KILN_MOUNT_NAMESPACE=host`` keeps mounts in the host namespace (for debugging and tests).
    """
    if os.environ.get("KILN_MOUNT_NAMESPACE") == "host" or os.geteuid() != 0:
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        log.debug("unshare(CLONE_NEWNS) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        log.debug("making / private failed: %s", os.strerror(ctypes.get_errno()))
    return True
