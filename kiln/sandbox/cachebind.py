"""Shared caches seen by steps through a private copy-on-write view; verified files flow back.

apt's lists and downloaded ``.deb`` files are shared between builds (``Bind(..., cow=True)``).
Steps never get the host directory itself: each phase mounts an overlay whose lower directory is
the shared cache and whose upper directory is private to the build, and binds that. When the
phase ends, what it added goes back into the shared cache from the host side, atomically (copy
to a temporary name, rename), and only what Kiln can verify, since apt trusts these directories
without checking again: an ``InRelease`` signed by a key of the parent's archive keyrings
(``gpgv``), index files whose SHA-256 that ``InRelease`` lists, and ``.deb`` files whose SHA-256 a
verified ``Packages`` index lists. apt's binary caches (``pkgcache.bin``) never flow back: apt
rebuilds them from the lists.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from kiln.sandbox.bwrap import Bind
from kiln.sandbox.overlay import overlay
from kiln.sandbox.run import require_tool, run

log = logging.getLogger(__name__)

LISTS = "/var/lib/apt/lists"
ARCHIVES = "/var/cache/apt/archives"
_SHA256_LINE = re.compile(r"^ ([0-9a-f]{64})\s+(\d+)\s+(\S+)$")


def archive_keyrings(parent_root: Path) -> list[Path]:
    """Binary keyrings of the parent root (made by mmdebstrap from the host's trusted keyrings)."""
    found = sorted((parent_root / "usr/share/keyrings").glob("*.gpg"))
    found += sorted((parent_root / "etc/apt/trusted.gpg.d").glob("*.gpg"))
    return [p for p in found if "removed" not in p.name and p.is_file() and not p.is_symlink()]


def read_only(binds: Sequence[Bind]) -> tuple[Bind, ...]:
    """The binds with every shared cache made a plain read-only bind (for test instances)."""
    return tuple(replace(b, readonly=True, cow=False) if b.cow else b for b in binds)


@contextmanager
def cache_views(binds: Sequence[Bind], scratch: Path, keyrings: Sequence[Path]) -> Iterator[tuple[Bind, ...]]:
    """Yield ``binds`` with each shared cache replaced by a writable bind of a private overlay view;
    afterwards copy what can be verified back into the shared caches (see the module doc)."""
    views: list[Bind] = []
    uppers: dict[str, tuple[Path, Path]] = {}
    with ExitStack() as stack:
        for index, bind in enumerate(binds):
            if not bind.cow:
                views.append(bind)
                continue
            bind.source.mkdir(parents=True, exist_ok=True)
            upper = scratch / f"cache-{index}"
            merged = stack.enter_context(overlay([bind.source], upper, scratch))
            views.append(Bind(merged, bind.target, readonly=False))
            uppers[bind.target] = (upper, bind.source)
        yield tuple(views)
        stack.close()
        copy_back(uppers, keyrings)


def copy_back(uppers: dict[str, tuple[Path, Path]], keyrings: Sequence[Path]) -> None:
    """Copy the verified new files of each overlay upper directory into its shared cache."""
    lists = uppers.get(LISTS)
    indexes: list[Path] = []
    if lists is not None:
        indexes = _copy_lists(lists[0], lists[1], keyrings)
    debs = uppers.get(ARCHIVES)
    if debs is not None:
        shared_lists = [lists[1]] if lists is not None else []
        _copy_debs(debs[0], debs[1], indexes + _packages_files(shared_lists))


def _install(src: Path, dest_dir: Path) -> None:
    """Copy ``src`` into ``dest_dir`` under its name, atomically (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=".kiln-", dir=dest_dir)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(dest_dir / src.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _signed(release: Path, keyrings: Sequence[Path]) -> bool:
    if not keyrings:
        return False
    argv = [require_tool("gpgv"), "--quiet"]
    for keyring in keyrings:
        argv += ["--keyring", str(keyring)]
    return run([*argv, str(release)], check=False).returncode == 0


def _listed_hashes(release: Path) -> dict[str, tuple[str, int]]:
    """``path -> (sha256, size)`` from the SHA256 section of a (verified) InRelease."""
    listed: dict[str, tuple[str, int]] = {}
    section = False
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(" "):
            section = line.startswith("SHA256:")
            continue
        match = _SHA256_LINE.match(line) if section else None
        if match:
            listed[match[3]] = (match[1], int(match[2]))
    return listed


def _copy_lists(upper: Path, shared: Path, keyrings: Sequence[Path]) -> list[Path]:
    """Copy signed InRelease files and the index files they vouch for; returns the Packages copied."""
    copied: list[Path] = []
    for release in sorted(upper.glob("*_InRelease")):
        if not _regular(release) or not _signed(release, keyrings):
            log.debug("not sharing %s: no valid signature", release.name)
            continue
        prefix = release.name.removesuffix("InRelease")
        for path, (sha, size) in _listed_hashes(release).items():
            index = upper / (prefix + path.replace("/", "_"))
            if _regular(index) and index.stat().st_size == size and _sha256(index) == sha:
                _install(index, shared)
                if index.name.endswith("_Packages"):
                    copied.append(shared / index.name)
        _install(release, shared)
    return copied


def _packages_files(dirs: Sequence[Path]) -> list[Path]:
    return [p for d in dirs for p in sorted(d.glob("*_Packages")) if _regular(p)]


def _index_hash(data: bytes, filename: str) -> str | None:
    """SHA-256 a Packages index gives for the ``.deb`` called ``filename`` (None: not listed)."""
    needle = b"/" + filename.encode() + b"\n"
    at = data.find(needle)
    while at != -1:
        start = data.rfind(b"\n\n", 0, at) + 2
        end = data.find(b"\n\n", at)
        stanza = data[start : end if end != -1 else len(data)]
        match = re.search(rb"^SHA256: ([0-9a-f]{64})$", stanza, re.MULTILINE)
        if match:
            return match[1].decode()
        at = data.find(needle, at + 1)
    return None


def _copy_debs(upper: Path, shared: Path, packages: Sequence[Path]) -> None:
    new = [d for d in sorted(upper.glob("*.deb")) if _regular(d) and not (shared / d.name).exists()]
    indexes = [p.read_bytes() for p in packages] if new else []
    for deb in new:
        pool_name = re.sub(r"_\d+%3a", "_", deb.name)  # apt names an epoch in the file; the pool does not
        digest = _sha256(deb)
        if any(_index_hash(data, pool_name) == digest for data in indexes):
            _install(deb, shared)
        else:
            log.debug("not sharing %s: no verified index lists its SHA-256", deb.name)
