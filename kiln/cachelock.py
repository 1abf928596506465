"""Locks and atomic writes for entries of the caches that concurrent builds share.

Caches (parents, layers, .debs, apt lists) are shared by builds running at once, in one data dir or in
many (``KILN_CACHE_DIR``). Every entry follows the same rules:

* one builder at a time makes an entry: it holds the entry's *create* lock (``flock(LOCK_EX)``); a
  second builder of the same key waits for it and then reuses what it made;
* an entry is written where no reader looks, synced, and made visible by one ``rename(2)`` (of the
  entry, of its marker file or of a symlink): readers never see half an entry;
* a build using an entry holds a *lease* on it (``flock(LOCK_SH)``) until it ends; whoever removes an
  entry takes the lease exclusively without waiting and leaves the entry alone when it cannot.

flock locks belong to the open file, so they are released when their process dies, however it dies.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType


class FileLock:
    """An flock on ``path`` (created when missing). Thread-safe, and ``release`` may be called twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, shared: bool = False, blocking: bool = True,
                on_wait: Callable[[], None] | None = None) -> bool:  # fmt: skip
        """Take the lock; False only when ``blocking`` is off and someone else holds it.

        ``on_wait`` is called once before blocking (to say why the build pauses). The lock file may be
        removed with its entry while we wait; then the lock is taken again on the file now at ``path``.
        """
        assert self._fd is None, f"{self.path} is already locked"
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not blocking:
                        os.close(fd)
                        return False
                    if on_wait is not None:
                        on_wait()
                        on_wait = None
                    fcntl.flock(fd, mode)
                if _same_file(fd, self.path):
                    self._fd = fd
                    return True
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # locked a file that was removed meanwhile: try the one at ``path`` now

    def release(self) -> None:
        with self._guard:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> FileLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return mine.st_nlink > 0 and (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def try_exclusive(*paths: Path) -> list[FileLock] | None:
    """Exclusive locks on every one of ``paths`` without waiting (to remove an entry nobody uses),
    or None (and nothing held) when any is taken."""
    held: list[FileLock] = []
    for path in paths:
        lock = FileLock(path)
        if not lock.acquire(blocking=False):
            for other in held:
                other.release()
            return None
        held.append(lock)
    return held


_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path: Path) -> None:
    """Flush the file system holding ``path`` (a whole tree in one call, before its commit rename)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str) -> None:
    """Write ``path`` whole or not at all: a synced private file renamed over it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _stage_copy(source: Path, dest_dir: Path) -> Path:
    """A private copy (hard link when possible) of ``source`` in ``dest_dir``, ready to be renamed."""
    tmp = dest_dir / f".{source.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.link(source, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, tmp)
    return tmp


def add_files(source_dir: Path, dest_dir: Path, pattern: str) -> int:
    """Add the files of ``source_dir`` matching ``pattern`` that ``dest_dir`` lacks, each one whole
    (staged privately, then linked in: a file already there, even one added meanwhile, is kept)."""
    added = 0
    for source in sorted(source_dir.glob(pattern)):
        if not source.is_file() or source.is_symlink() or (dest_dir / source.name).exists():
            continue
        try:
            tmp = _stage_copy(source, dest_dir)
        except FileNotFoundError:
            continue  # removed meanwhile (``apt-get clean`` in a step)
        try:
            os.link(tmp, dest_dir / source.name)
            added += 1
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return added


def replace_files(source_dir: Path, dest_dir: Path, skip: tuple[str, ...] = ()) -> int:
    """Put every regular file at the top of ``source_dir`` into ``dest_dir``, each by one rename."""
    replaced = 0
    for source in sorted(source_dir.iterdir()):
        if source.name in skip or not source.is_file() or source.is_symlink():
            continue
        tmp = _stage_copy(source, dest_dir)
        os.replace(tmp, dest_dir / source.name)
        tmp.unlink(missing_ok=True)  # rename(2) does nothing when both names link one file already
        replaced += 1
    return replaced


def discard(path: Path) -> None:
    """Remove a directory: first renamed aside (one step, so nobody sees it half deleted), then deleted."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
