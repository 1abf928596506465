"""The data directory (``KILN_HOME``): where caches, blobs, images, logs and the catalog live.

Layout::

    catalog.db                 SQLite catalog (unless KILN_DATABASE_URL says otherwise)
    blobs/sha256/<hex>         content-addressed store: layers, configs, evidence files
    cache/ (or KILN_CACHE_DIR, to share caches between data directories)
    cache/debs/                .deb files shared by every bootstrap and every apt-get in a step
    cache/apt/<key>/           apt lists and binary caches per set of sources, bind-mounted into steps
    cache/apt/lock             held by whoever runs apt on, or writes into, the shared apt state
    cache/parents/<key>/       cached parent root filesystems: current -> v-<id>/ (rootfs/ + parent.json)
    cache/layers/<key>/        cached layers (upper/ + layer.tar.gz + layer.json), <key>.lock, <key>.lease
    images/<name>/<version>/   published artifacts of an image version
    logs/<build-id>.jsonl      build logs
    tmp/                       per-build scratch space, always removed (each beside NAME.owner,
                               locked while its process lives: a killed process's is reclaimed)

Builds running at once share the caches: kiln.cachelock has the rules every cache entry follows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.cachelock import FileLock
from kiln.settings import Settings

if TYPE_CHECKING:
    from kiln.models import Artifact

OWNER_SUFFIX = ".owner"


def owner_file(scratch: Path) -> Path:
    """The lock file that says whose a scratch directory is (see :meth:`Store.scratch`)."""
    return scratch.with_name(scratch.name + OWNER_SUFFIX)


@dataclass(frozen=True)
class Store:
    """Paths inside one data directory."""

    home: Path
    cache: Path
    database: str | None = None  # the catalog's URL; None: SQLite in ``home``
    shared: str | None = None  # KILN_STORE_URL: artifacts recorded elsewhere are read from there

    @classmethod
    def open(cls, home: Path | None = None, settings: Settings | None = None) -> Store:
        """The data directory ``home`` (default: the settings', loaded from the environment if not given)."""
        settings = settings if settings is not None else Settings.from_env()
        root = (home or settings.data_dir).expanduser().absolute()
        return cls.open_at(root, settings.cache_dir or root / "cache", settings.database_url,
                           shared=settings.store_url)  # fmt: skip

    @classmethod
    def open_at(
        cls, home: Path, cache: Path, database: str | None = None, *, shared: str | None = None
    ) -> Store:
        """A store with an explicit cache directory (and optionally its own catalog)."""
        store = cls(home.absolute(), cache.absolute(), database, shared)
        for sub in ("blobs/sha256", "images", "logs", "tmp"):
            (store.home / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("debs/partial", "parents", "layers", "apt"):
            (store.cache / sub).mkdir(parents=True, exist_ok=True)
        return store

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def deb_cache(self) -> Path:
        return self.cache / "debs"

    def apt_state_for(self, sources: list[str]) -> Path:
        """apt's state for a parent's sources (shared by its bootstrap and every step on it)."""
        canonical = json.dumps(sources, sort_keys=True, separators=(",", ":"))
        return self.apt_state(hashlib.sha256(canonical.encode()).hexdigest())

    def apt_state(self, key: str) -> Path:
        """apt's state for one set of sources: ``lists/`` and ``cache/`` (pkgcache.bin, ...)."""
        path = self.cache / "apt" / key
        (path / "lists/partial").mkdir(parents=True, exist_ok=True)
        (path / "cache/archives").mkdir(parents=True, exist_ok=True)
        return path

    def parent_dir(self, key: str) -> Path:
        return self.cache / "parents" / key

    def layer_dir(self, key: str) -> Path:
        return self.cache / "layers" / key

    def image_dir(self, name: str, version: str) -> Path:
        return self.home / "images" / name / version

    def output_dir(self, name: str, version: str, build_id: str) -> Path:
        """Where one build writes its artifacts (recorded in the catalog only if the build succeeds)."""
        return self.home / "images" / name / f"{version}-{build_id[:12]}"

    def artifact_path(self, path: str) -> Path:
        """Where a recorded artifact path points (relative ones are inside the data dir). Readers use
        :meth:`artifact_file`, which fetches an artifact recorded on another machine."""
        p = Path(path)
        return p if p.is_absolute() else self.home / p

    def artifact_file(self, artifact: Artifact) -> Path:
        """A recorded artifact on this machine: where it was written, else read through from the
        shared store (kiln.readthrough)."""
        from kiln.readthrough import artifact_file

        return artifact_file(self, artifact)

    def evidence_file(self, digest: str) -> Path:
        """A recorded evidence file (or any blob) by digest: the local blob, else read through."""
        from kiln.readthrough import blob_file

        return blob_file(self, digest)

    def log_path(self, build_id: str) -> Path:
        return self.home / "logs" / f"{build_id}.jsonl"

    def blob_path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        return self.home / "blobs" / algo / hexdigest

    def put_blob(self, source: Path) -> tuple[str, int]:
        """Move ``source`` into the blob store; returns (digest, size). Idempotent."""
        digest = "sha256:" + file_sha256(source)
        target = self.blob_path(digest)
        size = source.stat().st_size
        if target.exists():
            source.unlink()
        else:
            os.replace(source, target)
        return digest, size

    @contextmanager
    def scratch(self, prefix: str, owner: Mapping[str, str] | None = None) -> Iterator[Path]:
        """A temporary directory under ``tmp/``, removed however the block ends.

        Beside it, ``<name>.owner`` (``owner`` as JSON) stays exclusively flock'ed while the block
        runs: the kernel drops the lock when the process dies, so a lockable owner file marks a dead
        process's leftovers (:mod:`kiln.lifecycle.reclaim`). The directory itself holds only what its
        user puts there (a parent bootstrap renames it into the cache whole).
        """
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.home / "tmp"))
        lock_path = owner_file(path)
        try:
            with open(lock_path, "w", encoding="utf-8") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                lock.write(json.dumps(dict(owner or {})))
                lock.flush()
                yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            lock_path.unlink(missing_ok=True)

    @contextmanager
    def apt_lock(self) -> Iterator[None]:
        """Exclusive use of apt's shared state (lists, binary caches, .debs): one apt at a time.

        The lock file is in ``apt/`` itself, so every data dir that shares that directory (a shared
        ``KILN_CACHE_DIR``, the reproducibility check's twin) shares the lock.
        """
        with FileLock(self.cache / "apt" / "lock"):
            yield


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (same filesystem), copying when that is impossible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
