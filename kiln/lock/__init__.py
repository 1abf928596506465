"""Lock files: record a build's resolved inputs and reproduce its exact package set (``--locked``)."""

from kiln.lock.apply import SandboxLock, mmdebstrap_lock_args, sandbox_lock
from kiln.lock.diff import verify_locked
from kiln.lock.model import (
    ComponentLock,
    LockedPackage,
    LockFile,
    ParentLock,
    RecipeLock,
    read_lockfile,
    write_lockfile,
)
from kiln.lock.packages import packages_with_hashes
from kiln.lock.record import lock_mismatches, lockfile_from_build
from kiln.lock.repo import LockedRepo, prepare_locked_repo

__all__ = [
    "ComponentLock",
    "LockFile",
    "LockedPackage",
    "LockedRepo",
    "ParentLock",
    "RecipeLock",
    "SandboxLock",
    "lock_mismatches",
    "lockfile_from_build",
    "mmdebstrap_lock_args",
    "packages_with_hashes",
    "prepare_locked_repo",
    "read_lockfile",
    "sandbox_lock",
    "verify_locked",
    "write_lockfile",
]
