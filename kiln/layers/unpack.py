"""Unpack layers: the inverse of :mod:`kiln.layers.tar`, with OCI whiteout semantics (image-spec
``layer.md``).

``.wh.<name>`` removes ``<name>`` from lower layers, ``<dir>/.wh..wh..opq`` empties ``<dir>`` of
everything lower layers put there. Nothing in a layer can write outside ``dest``: every path is
resolved inside it, symlinks included (absolute links restart at ``dest``, ``..`` stops there), hard
links must point inside, and ``..`` in member names is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import IO, Protocol

from kiln.errors import KilnError
from kiln.layers.walk import KEPT_XATTRS, OPAQUE_MARKER, WHITEOUT_PREFIX
from kiln.sandbox.paths import resolve_in_root


class UnpackError(KilnError):
    """A layer cannot be applied: not a tar, or (:class:`UnsafeLayer`) an entry Kiln refuses."""


class LayerSource(Protocol):
    """A layer to apply: its digest (for messages) and its uncompressed tar stream."""

    @property
    def digest(self) -> str: ...

    def open(self) -> AbstractContextManager[IO[bytes]]: ...


class UnsafeLayer(UnpackError):
    """A layer holds an entry that would land outside the instance root or is malformed."""


def _member_path(name: str, digest: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"layer {digest}: entry {name!r} climbs out with '..'")
    return "/".join(parts)


def _remove(path: Path) -> None:
    """Delete a file, symlink or whole directory without following symlinks."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


class _LayerApplier:
    def __init__(
        self, root: Path, digest: str, dir_times: dict[Path, int], *, allow_devices: bool = False
    ) -> None:
        self.root = root
        self.allow_devices = allow_devices
        self.skipped_devices: list[str] = []
        self.digest = digest
        self.dir_times = dir_times
        self.written: set[str] = set()
        # Directories (relative paths) known to be real directories, not symlinks: a child of one needs
        # no symlink resolution. Forgotten entirely whenever anything is removed.
        self.real_dirs: set[str] = {""}
        self.root_text = str(root)

    def resolve(self, rel: str) -> Path:
        if rel.rpartition("/")[0] in self.real_dirs:
            return Path(f"{self.root_text}/{rel}")
        return resolve_in_root(self.root, rel, follow_last=False)

    def remove(self, path: Path) -> None:
        self.real_dirs = {""}
        _remove(path)

    def apply(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            rel = _member_path(member.name, self.digest)
            if not rel:
                continue
            parent, _, base = rel.rpartition("/")
            if base == OPAQUE_MARKER:
                self._opaque(parent)
            elif base.startswith(WHITEOUT_PREFIX):
                self._whiteout(parent, base.removeprefix(WHITEOUT_PREFIX))
            else:
                self._extract(tar, member, rel)
                self.written.add(rel)

    def _whiteout(self, parent: str, name: str) -> None:
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayer(
                f"layer {self.digest}: invalid whiteout {WHITEOUT_PREFIX}{name!r} in {parent!r}"
            )
        target = f"{parent}/{name}" if parent else name
        if target not in self.written:
            path = self.resolve(target)
            if path != self.root:
                self.remove(path)

    def _opaque(self, rel_dir: str) -> None:
        """Remove what lower layers put in ``rel_dir``, keeping what this layer already wrote there."""
        directory = resolve_in_root(self.root, rel_dir) if rel_dir else self.root
        if not directory.is_dir() or directory.is_symlink():
            return
        prefix = rel_dir + "/" if rel_dir else ""
        stack = [(directory, prefix)]
        while stack:
            host_dir, rel_prefix = stack.pop()
            with os.scandir(host_dir) as it:
                children = list(it)
            for child in children:
                rel = rel_prefix + child.name
                if rel not in self.written:
                    self.remove(Path(child.path))
                elif child.is_dir(follow_symlinks=False):
                    stack.append((Path(child.path), rel + "/"))

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str) -> None:
        if (member.ischr() or member.isblk()) and not self.allow_devices:
            self.skipped_devices.append(rel)
            return
        target = self.resolve(rel)
        if target == self.root:
            return
        if rel.rpartition("/")[0] not in self.real_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
        existing = None
        with suppress(FileNotFoundError):
            existing = os.lstat(target).st_mode
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing)):
            self.remove(target)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing):
                target.mkdir()
            if target == self.root / rel:
                self.real_dirs.add(rel)
        elif member.isreg():
            source = tar.extractfile(member)
            assert source is not None
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out, source:
                shutil.copyfileobj(source, out, 1 << 20)
        elif member.issym():
            target.symlink_to(member.linkname)
        elif member.islnk():
            link_rel = _member_path(member.linkname, self.digest)
            source_path = resolve_in_root(self.root, link_rel, follow_last=False)
            try:
                os.link(source_path, target, follow_symlinks=False)
            except FileNotFoundError:
                raise UnsafeLayer(
                    f"layer {self.digest}: hard link {rel!r} points to missing {member.linkname!r}"
                ) from None
            return  # a hard link shares its target's metadata
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            raise UnsafeLayer(f"layer {self.digest}: entry {rel!r} has unsupported tar type {member.type!r}")
        self._metadata(target, member)

    def _metadata(self, target: Path, member: tarfile.TarInfo) -> None:
        if os.geteuid() == 0:
            os.chown(target, member.uid, member.gid, follow_symlinks=False)
        if member.issym():
            os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
            return
        for key, value in member.pax_headers.items():
            name = key.removeprefix("SCHILY.xattr.")
            if name in KEPT_XATTRS:
                try:
                    os.setxattr(target, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                        raise
        target.chmod(member.mode & 0o7777)  # after chown, which clears set-id bits
        if member.isdir():
            self.dir_times[target] = int(member.mtime)
        else:
            os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def apply_layer(
    source: LayerSource, root: Path, dir_times: dict[Path, int], *, allow_devices: bool = False
) -> list[str]:
    """Apply one layer on top of ``root``; returns the device nodes it skipped. Directory mtimes are
    collected in ``dir_times`` (set them last, see :func:`unpack_layers`)."""
    applier = _LayerApplier(root, source.digest, dir_times, allow_devices=allow_devices)
    try:
        with source.open() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            applier.apply(tar)
    except tarfile.TarError as exc:
        raise UnpackError(f"layer blob {source.digest} is not a valid tar: {exc}") from None
    return applier.skipped_devices


def unpack_layers(layers: Iterable[LayerSource], dest: Path, *, allow_devices: bool = False) -> list[str]:
    """Apply ``layers`` in order into the new directory ``dest`` (removed again on failure); returns the
    device nodes skipped. Character and block devices are skipped unless ``allow_devices``: a node in an
    untrusted image (say, the host's disk) would give processes using the root access to host hardware.
    Ownership is kept when running as root."""
    dest.mkdir(mode=0o755)
    skipped: list[str] = []
    try:
        dir_times: dict[Path, int] = {}
        for source in layers:
            skipped += apply_layer(source, dest, dir_times, allow_devices=allow_devices)
        # Directory mtimes last: creating children changed them.
        for directory in sorted(dir_times, key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not directory.is_symlink():
                os.utime(directory, (dir_times[directory], dir_times[directory]))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return skipped
