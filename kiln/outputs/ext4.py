"""The root file system: ``mkfs.ext4 -d`` straight into the disk file at the partition's offset, then
``debugfs`` for the disk-only changes (fstab, machine-id, ...) so the source root is never touched.

Reproducible: fixed UUID and directory hash seed, ``E2FSPROGS_FAKE_TIME`` for the superblock and new
inodes, and a ``debugfs`` pass that gives every inode atime = ctime = mtime, clamped to the epoch
(``mkfs.ext4 -d`` copies the source's ctime and atime, which change whenever the tree is copied or
read). mke2fs 1.47 adds directory entries in sorted order, so inode numbers do not depend on readdir.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln.errors import KilnError
from kiln.monitor import Monitor
from kiln.sandbox.run import require_tool, run

BLOCK = 4096
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Override:
    """A file the disk gets instead of (or in addition to) the root's: ``content=None`` deletes it."""

    path: str
    content: bytes | None
    mode: int = 0o644


@dataclass
class Tree:
    """What mkfs will copy: every path with its clamped mtime, and the space it needs."""

    entries: list[tuple[str, int]] = field(default_factory=list)
    used_bytes: int = 0
    inodes: int = 0
    unsafe: list[str] = field(default_factory=list)


def scan_tree(rootfs: Path, epoch: int) -> Tree:
    """Walk ``rootfs`` (never following links) once: paths, clamped mtimes, blocks and inodes used."""
    tree = Tree()
    seen: set[tuple[int, int]] = set()
    root = os.fspath(rootfs)
    tree.entries.append(("/", min(int(os.lstat(root).st_mtime), epoch)))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)  # noqa: PTH118 - os.walk strings, hot loop
            st = os.lstat(full)
            rel = full[len(root) :]
            tree.entries.append((rel, min(int(st.st_mtime), epoch)))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            tree.inodes += 1
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or st.st_size > 60:
                tree.used_bytes += -(-max(st.st_size, 1) // BLOCK) * BLOCK
    return tree


def quote(path: str) -> str | None:
    """A path as one debugfs argument, or None when debugfs cannot express it (control characters)."""
    if CONTROL.search(path):
        return None
    return '"' + path.replace('"', '""') + '"'


def make_root_fs(
    disk: Path,
    *,
    offset: int,
    size: int,
    rootfs: Path,
    tree: Tree,
    label: str,
    fs_uuid: str,
    hash_seed: str,
    epoch: int,
    overrides: Sequence[Override],
    mkdirs: Sequence[str],
    scratch: Path,
    monitor: Monitor,
) -> None:
    """Create the ext4 file system inside ``disk`` at ``offset`` and apply the disk-only changes."""
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch), "LC_ALL": "C"}
    inodes = max(size // 16384, int(tree.inodes * 1.3) + 1024)
    run([require_tool("mkfs.ext4"), "-q", "-F", "-L", label, "-U", fs_uuid, "-N", str(inodes),
         "-E", f"offset={offset},hash_seed={hash_seed},nodiscard", "-d", str(rootfs),
         str(disk), f"{size // 1024}k"], env=env)  # fmt: skip
    script = list(_override_commands(rootfs, overrides, mkdirs, scratch, epoch))
    extra = [(o.path, epoch) for o in overrides if o.content is not None] + [(d, epoch) for d in mkdirs]
    for path, mtime in [*tree.entries, *extra]:
        quoted = quote(path)
        if quoted is None:
            tree.unsafe.append(path)
            continue
        script += [f"sif {quoted} atime {mtime}", f"sif {quoted} ctime {mtime}"]
        if mtime == epoch:  # clamped (or a file Kiln wrote): mkfs copied a later or a host mtime
            script.append(f"sif {quoted} mtime {mtime}")
    if tree.unsafe:
        monitor.warning(
            f"{len(tree.unsafe)} path(s) with control characters keep their source timestamps "
            f"(the disk may not be bit-reproducible): {tree.unsafe[:3]}"
        )
    debugfs(disk, offset, script, scratch, env=env)


def _override_commands(
    rootfs: Path, overrides: Sequence[Override], mkdirs: Sequence[str], scratch: Path, epoch: int
) -> Iterator[str]:
    for directory in mkdirs:
        if not os.path.lexists(rootfs / directory.lstrip("/")):
            yield f"mkdir {quote(directory)}"
    for index, item in enumerate(overrides):
        quoted = quote(item.path)
        if quoted is None:
            raise KilnError(f"cannot write {item.path!r} into the disk image")
        source = rootfs / item.path.lstrip("/")
        if os.path.lexists(source):
            if source.is_dir() and not source.is_symlink():
                raise KilnError(f"{item.path} is a directory in the image; the disk needs a file there")
            yield f"rm {quoted}"
        if item.content is not None:
            staged = scratch / f"override-{index}"
            staged.write_bytes(item.content)
            staged.chmod(item.mode)
            os.utime(staged, (epoch, epoch))
            yield f"write {quote(str(staged))} {quoted}"


def debugfs(image: Path, offset: int, commands: Sequence[str], scratch: Path, *,
            env: dict[str, str] | None = None) -> str:  # fmt: skip
    """Run debugfs commands in write mode on the ext4 at ``offset`` of ``image``; any error fails."""
    script = scratch / "debugfs.cmds"
    script.write_text("\n".join(commands) + "\n")
    target = f"{image}?offset={offset}" if offset else str(image)
    done = run([require_tool("debugfs"), "-w", "-f", str(script), target], env=env, check=False)
    errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    script.unlink()
    if done.returncode != 0 or errors:
        raise KilnError(
            "writing into the disk's root file system failed (debugfs):\n" + "\n".join(errors[:20])
        )
    return done.stdout
