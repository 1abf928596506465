"""Debian/Ubuntu parents bootstrapped from real packages with mmdebstrap.

Downloaded .debs go to a cache shared by every bootstrap (the second bootstrap of the same
package set downloads nothing); the finished root is cached by a key over its inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kiln.cachelock import FileLock, add_files, replace_files
from kiln.errors import CommandFailed, KilnError
from kiln.monitor import Event, Monitor
from kiln.rootfs import parentcache
from kiln.rootfs.archive import SuiteState, states_from_lists
from kiln.rootfs.dpkg import cached_deb_sha256, installed_packages
from kiln.rootfs.kernels import DEFER_INITRAMFS, make_initramfs
from kiln.rootfs.parentcache import Version
from kiln.rootfs.slim import SlimOptions, slim
from kiln.sandbox.run import require_tool, run
from kiln.sandbox.tmpfs import nearly_full, ram_scratch
from kiln.store import Store

PARENT_FORMAT = "kiln-parent-v3"  # v3: the initramfs is made once, after every package

DEBIAN_SUITES = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14", "sid": "unstable"}
UBUNTU_SUITES = {"focal": "20.04", "jammy": "22.04", "noble": "24.04"}
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian", "ubuntu": "http://archive.ubuntu.com/ubuntu"}


@dataclass(frozen=True)
class DebianParent:
    """Inputs of a bootstrapped parent: everything that changes the resulting root is in here."""

    distribution: str
    suite: str
    mirror: str
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    architecture: str = "amd64"
    areas: tuple[str, ...] = ("main",)
    security: bool = True
    slim: tuple[str, ...] | None = None  # None: full root; else slimmed, keeping these locales

    @property
    def key(self) -> str:
        data = json.dumps({"format": PARENT_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    def sources(self) -> list[str]:
        """One-line apt sources: release, -updates and -security for stable Debian releases."""
        areas = " ".join(self.areas)
        lines = [f"deb {self.mirror} {self.suite} {areas}"]
        if self.distribution == "debian" and self.suite not in ("sid", "unstable") and self.security:
            lines.append(f"deb {self.mirror} {self.suite}-updates {areas}")
            security = self.mirror.rsplit("/debian", 1)[0] + "/debian-security"
            lines.append(f"deb {security} {self.suite}-security {areas}")
        elif self.distribution == "ubuntu" and self.security:
            lines += [f"deb {self.mirror} {self.suite}-updates {areas}",
                      f"deb {self.mirror} {self.suite}-security {areas}"]  # fmt: skip
        return lines


@dataclass
class ParentRoot:
    """A ready parent root filesystem in the cache."""

    key: str
    rootfs: Path
    source_date_epoch: int
    cached: bool
    debs: list[dict[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    persisted: Future[None] | None = None  # the copy into the cache when ``rootfs`` is a copy in memory
    version: str = ""  # which version of the cache entry ("" in the layout from before versions)
    lease: Version | None = None  # held while ``rootfs`` is in use: ``release`` it when done
    archive: list[SuiteState] = field(default_factory=list)  # the suites it was bootstrapped from

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


def archive_date(mirror: str, suite: str) -> int:
    """The archive's Release date (``InRelease``, else an unsigned ``Release``): a reproducible default
    for SOURCE_DATE_EPOCH."""
    from kiln.rootfs.archive import ArchiveReader, parse_sources

    source = parse_sources([f"deb {mirror} {suite}"])[0]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kiln-release-") as scratch,
            ArchiveReader(Path(scratch)) as reader,
        ):
            return reader.release(source)[0].date
    except KilnError as exc:
        raise KilnError(
            f"cannot read the archive's Release file for {source.url} {suite}: {exc.message}",
            hint="check the parent's mirror and suite, and network access to the archive",
        ) from exc


def deb_inventory(rootfs: Path, deb_cache: Path) -> list[dict[str, str]]:
    """Every installed package with the sha256 of the .deb it came from (for locks and provenance)."""
    inventory = []
    for package in installed_packages(rootfs):
        entry = {"name": package.name, "version": package.version, "architecture": package.architecture}
        if sha256 := cached_deb_sha256(package, deb_cache):
            entry |= {"sha256": sha256, "filename": package.deb_filename}
        inventory.append(entry)
    return inventory


def bootstrap(parent: DebianParent, target: Path, store: Store, epoch: int, monitor: Monitor,
              extra_args: Sequence[str] = ()) -> list[SuiteState]:  # fmt: skip
    """Run mmdebstrap into ``target`` (which must not exist yet); returns the state of the archive
    it bootstrapped from (the Release files apt fetched).

    The shared .deb cache and apt lists are never read or written in place while other builds use
    them: mmdebstrap reads a snapshot of the .debs (hard links) and writes into private directories,
    whose files then enter the caches one whole file at a time (kiln.cachelock).
    """
    require_tool("mmdebstrap")
    with store.scratch("apt-io-") as io:
        debs_in, debs_out, lists_out = io / "debs-in", io / "debs-out", io / "lists-out"
        for directory in (debs_in, debs_out, lists_out):
            directory.mkdir()
        add_files(store.deb_cache, debs_in, "*.deb")
        argv = [
            "mmdebstrap",
            "--verbose",  # apt's and dpkg's lines: the progress display counts packages and bytes
            f"--variant={parent.variant}",
            f"--architectures={parent.architecture}",
            "--mode=root",
            "--format=directory",
            "--skip=essential/unlink",
            "--skip=cleanup/apt/cache",
            '--aptopt=Acquire::Retries "3"',
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
            f"--setup-hook=sync-in {debs_in} /var/cache/apt/archives",
            f"--customize-hook=sync-out /var/cache/apt/archives {debs_out}",
            # The lists apt just fetched seed the lists steps use: their first `apt-get update`
            # only revalidates.
            f"--customize-hook=sync-out /var/lib/apt/lists {lists_out}",
            '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin',
            # Host files mmdebstrap copies in for debootstrap compatibility: keep the image host-neutral.
            '--customize-hook=: > "$1"/etc/resolv.conf',
            '--customize-hook=echo localhost > "$1"/etc/hostname',
        ]
        if parent.packages:
            argv.append("--include=" + ",".join(parent.packages))
        argv += [*extra_args, parent.suite, str(target), *parent.sources()]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), **DEFER_INITRAMFS}

        def forward(stream: str, line: str) -> None:
            monitor.emit(Event("output", scope="parent", message=line, data={"stream": stream}))

        run(argv, env=env, on_output=forward)
        archive = states_from_lists(lists_out, parent.sources())
        add_files(debs_out, store.deb_cache, "*.deb")
        lists = store.apt_state_for(parent.sources()) / "lists"
        with store.apt_lock():  # steps of other builds may be reading these lists
            replace_files(lists_out, lists, skip=("lock",))
        return archive


def drop_host_state(rootfs: Path) -> None:
    """Remove what depends on the host's caches rather than on the packages: apt's binary caches
    (regenerated by apt) and the download dir whose owner comes from the shared .deb cache."""
    for binary_cache in (rootfs / "var/cache/apt").glob("*.bin"):
        binary_cache.unlink()
    partial = rootfs / "var/cache/apt/archives/partial"
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial)


def slim_parent(parent: DebianParent, rootfs: Path, monitor: Monitor) -> dict[str, int] | None:
    """Apply the slim rules (docs, man pages, locales, caches, logs) and keep later installs slim."""
    if parent.slim is None:
        return None
    report = slim(rootfs, SlimOptions(keep_locales=parent.slim))
    monitor.info(
        f"slim: parent root {report.size_before / 1e6:.1f} MB -> {report.size_after / 1e6:.1f} MB",
        data={"size_before": report.size_before, "size_after": report.size_after},
    )
    return {"size_before": report.size_before, "size_after": report.size_after}


Built = tuple[Path, list[dict[str, str]], dict[str, int] | None, list[SuiteState]]


def _make_root(parent: DebianParent, store: Store, epoch: int, monitor: Monitor, extra_args: Sequence[str],
               in_ram: Path | None, on_disk: Path) -> Built:  # fmt: skip
    """Bootstrap into ``in_ram`` when given (on disk if memory runs out), then finish the root:
    its initramfs, host state dropped, the .deb inventory, slim rules. Returns (root, debs, slim,
    archive state)."""
    target = in_ram or on_disk
    try:
        archive = bootstrap(parent, target, store, epoch, monitor, extra_args)
    except CommandFailed:
        if in_ram is None or not nearly_full(in_ram.parent):
            raise
        monitor.warning("the parent outgrew the memory scratch space: bootstrapping on disk")
        shutil.rmtree(in_ram)
        target = on_disk
        archive = bootstrap(parent, target, store, epoch, monitor, extra_args)
    make_initramfs(target, epoch, monitor)
    drop_host_state(target)
    debs = deb_inventory(target, store.deb_cache)
    return target, debs, slim_parent(parent, target, monitor), archive


def _cached(key: str, version: Version) -> ParentRoot:
    meta = version.meta
    return ParentRoot(key, version.rootfs, meta["source_date_epoch"], True, meta.get("debs", []),
                      meta.get("sources", []), version=version.id, lease=version,
                      archive=[SuiteState.model_validate(s) for s in meta.get("archive", [])])  # fmt: skip


def ensure_parent(parent: DebianParent, store: Store, monitor: Monitor, *, refresh: bool = False,
                  epoch: int | None = None, variant_key: str = "", extra_args: Sequence[str] = (),
                  ram: Path | None = None, use_tmpfs: bool = True) -> ParentRoot:  # fmt: skip
    """The cached root for ``parent``, leased until ``ParentRoot.release``; bootstrapped on first use
    (or with ``refresh``) as a new version of the cache entry, made current once complete
    (kiln.rootfs.parentcache). A build bootstrapping the same entry is waited for and reused.

    ``variant_key`` and ``extra_args`` make a separate cache entry bootstrapped differently (a locked
    package set); the returned key stays the parent's own.

    With ``ram`` (a memory file system that outlives the caller's use of the root), a new root is
    bootstrapped there and returned at once: its copy into the cache (3-6 s for a 190 MB root on the
    build machines' disks) goes on in the background, overlapping the build's components, and holds the
    entry's lock until it is complete. The caller must wait on ``ParentRoot.persisted`` before ``ram``
    goes away.
    """
    key = parent.key
    entry = store.parent_dir(hashlib.sha256((key + variant_key).encode()).hexdigest() if variant_key else key)
    entry.mkdir(parents=True, exist_ok=True)
    if not refresh and (version := parentcache.lease_current(entry)) is not None:
        return _cached(key, version)
    with ExitStack() as hold:
        lock = FileLock(entry / "lock")
        lock.acquire(on_wait=lambda: monitor.info("waiting for another build making this parent"))
        hold.callback(lock.release)
        if not refresh and (version := parentcache.lease_current(entry)) is not None:
            return _cached(key, version)  # made while we waited
        parentcache.sweep(entry)
        if epoch is None:
            epoch = archive_date(parent.mirror, parent.suite)
        directory = parentcache.new_version(entry)
        hold.callback(_drop_unpublished, entry, directory)
        rootfs = directory / "rootfs"
        started = time.time()
        if ram is None:
            scratch = hold.enter_context(store.scratch("parent-"))
            with ram_scratch(scratch / "ram", use_tmpfs) as in_ram:
                in_memory = scratch / "ram/rootfs" if in_ram else None
                built, debs, slimmed, archive = _make_root(
                    parent, store, epoch, monitor, extra_args, in_memory, rootfs
                )
                if built != rootfs:
                    run(["cp", "-a", str(built), str(rootfs)])
                    built = rootfs
        else:
            in_memory = Path(tempfile.mkdtemp(prefix="parent-", dir=ram)) / "rootfs"
            built, debs, slimmed, archive = _make_root(
                parent, store, epoch, monitor, extra_args, in_memory, rootfs
            )
        meta: dict[str, object] = {
            "key": key,
            "parent": asdict(parent),
            "source_date_epoch": epoch,
            "sources": parent.sources(),
            "bootstrapped": started,
            "debs": debs,
            "slim": slimmed,
            "archive": [s.model_dump() for s in archive],
        }
        if built == rootfs:
            lease = FileLock(directory / "lease")
            lease.acquire(shared=True)  # ours from the start: nobody removes it under us
            parentcache.publish(entry, directory, meta)
            version = parentcache.Version(entry, directory, meta, lease)
            return ParentRoot(key, rootfs, epoch, False, debs, parent.sources(), version=version.id,
                              lease=version, archive=archive)  # fmt: skip
        background = hold.pop_all()  # the lock (and the unpublished version) now belong to the copy

        def persist() -> None:
            with background:
                run(["cp", "-a", str(built), str(rootfs)])
                parentcache.publish(entry, directory, meta)

        copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kiln-parent-{key[:12]}")
        persisted = copier.submit(persist)
        copier.shutdown(wait=False)  # the copy goes on; the caller waits on ``persisted``
        return ParentRoot(key, built, epoch, False, debs, parent.sources(), persisted, directory.name,
                          archive=archive)  # fmt: skip


def _drop_unpublished(entry: Path, directory: Path) -> None:
    """A version that never became current (the bootstrap or the copy failed) is debris."""
    if parentcache.current_dir(entry) != directory:
        shutil.rmtree(directory, ignore_errors=True)
