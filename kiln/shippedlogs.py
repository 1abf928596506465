"""Build logs of queued builds, readable from any machine: shipped to the shared store while they grow.

A worker ships each build's JSON-lines log to ``KILN_STORE_URL`` every :data:`SHIP_SECONDS`, as chunks
of whole lines named by the attempt and the byte offset they start at:
``logs/<build id>/<attempt, 3 digits>/<offset, 12 digits>.jsonl``; when the build process has ended,
a last ship and ``.../<attempt>/end.json`` (the log's length) say the log is complete.
A reader without the log file mirrors the latest attempt's chunks, in order, into
``remote/logs/<build id>-<attempt>.jsonl`` of its own data directory and reads that file as it would a local
log; following a running build re-mirrors before each read. Nothing here is in the catalog: logs are
bulk data, and the store already is the one place every machine reads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kiln.catalog import Catalog
from kiln.catalog.schemas import BuildRecord
from kiln.objectstore import ObjectStore
from kiln.readthrough import shared_store
from kiln.store import Store

log = logging.getLogger(__name__)
SHIP_SECONDS = 1.0


END_WAIT = 15.0  # seconds a follower waits, once the build has ended, for its worker's last ship


def chunk_key(build_id: str, attempt: int, offset: int) -> str:
    return f"logs/{build_id}/{attempt:03d}/{offset:012d}.jsonl"


def end_key(build_id: str, attempt: int) -> str:
    return f"logs/{build_id}/{attempt:03d}/end.json"


class LogShipper:
    """Ships the whole lines a log file gained since the last call (the worker side)."""

    def __init__(self, shared: ObjectStore, build_id: str, attempt: int) -> None:
        self.shared, self.build_id, self.attempt, self.offset = shared, build_id, attempt, 0

    def ship(self, path: Path) -> int:
        """Put the complete lines after :attr:`offset` as one chunk; returns the bytes shipped."""
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        whole = data[: data.rfind(b"\n") + 1]
        if not whole:
            return 0
        self.shared.put_named(chunk_key(self.build_id, self.attempt, self.offset), whole)
        self.offset += len(whole)
        return len(whole)


class LogShipping:
    """Ships a build's log from a thread of its own every :data:`SHIP_SECONDS` until :meth:`finish`,
    then its tail and the end mark. The one shipping loop of both executors: the queue worker runs it
    per attempt, the local executor per build (attempt 1). ``locate`` returns the log's path once the
    build has one (None before)."""

    def __init__(
        self, shared: ObjectStore, build_id: str, attempt: int, locate: Callable[[], Path | None]
    ) -> None:
        self.shipper = LogShipper(shared, build_id, attempt)
        self.locate = locate
        self.path: Path | None = None
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"ship-{build_id[:8]}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.ended.wait(SHIP_SECONDS):
            self._ship()
        self._ship()
        shipper = self.shipper
        try:
            data = json.dumps({"bytes": shipper.offset}).encode()
            shipper.shared.put_named(end_key(shipper.build_id, shipper.attempt), data)
        except Exception as exc:
            log.warning("shipping the end of build %s's log failed: %s", shipper.build_id, exc)

    def _ship(self) -> None:
        try:
            self.path = self.path or self.locate()
            if self.path is not None:
                self.shipper.ship(self.path)
        except Exception as exc:  # the store is away: the next round ships what this one did not
            log.warning("shipping the log of build %s failed: %s", self.shipper.build_id, exc)

    def finish(self, timeout: float = 60.0) -> None:
        """The build process has ended: ship the rest and the end mark (waits for it)."""
        self.ended.set()
        self.thread.join(timeout)


def own_log(catalog: Catalog, home: Path, build_id: str) -> Path | None:
    """The build's log once a build process of data directory ``home`` has registered it."""
    path = catalog.get_build(build_id).log_path
    return Path(path) if path and Path(path).is_relative_to(home) else None


def current_attempt(catalog: Catalog, build_id: str) -> int | None:
    """The attempt a queued build is on (the catalog's count, so a retry is followed from its claim,
    before its worker shipped anything); None for a build that never went through the queue."""
    from kiln.catalog.queue import job_of

    job = job_of(catalog, build_id)
    return job.attempt if job is not None and job.attempt > 0 else None


def shipped_attempts(shared: ObjectStore, build_id: str) -> list[int]:
    """The attempts of which some log was shipped, in order."""
    return sorted({int(Path(k).parent.name) for k in shared.names(f"logs/{build_id}")})


def log_file(store: Store, build: BuildRecord, attempt: int | None = None) -> Path:
    """The build's log on this machine: its own file, else the mirror of what ``attempt`` shipped
    (default: the latest attempt shipped), brought up to date. Pass :func:`current_attempt` to follow a
    retried build's current attempt rather than the last one that managed to ship."""
    own = Path(build.log_path) if build.log_path else None
    shared = shared_store(store)
    if own is not None and own.is_file() and (shared is None or own.is_relative_to(store.home)):
        return own
    if shared is None:
        return own or store.home / "remote" / "logs" / f"{build.id}.jsonl"
    if attempt is None:
        attempt = max(shipped_attempts(shared, build.id), default=0)
    return mirror_attempt(store, shared, build.id, attempt)


def mirror_attempt(store: Store, shared: ObjectStore, build_id: str, attempt: int) -> Path:
    """``remote/logs/<build>-<attempt>.jsonl``: the chunks ``attempt`` shipped, in order, appended to
    what was mirrored before (it stops at a gap: a chunk being written is fetched next time)."""
    keys = [k for k in shared.names(f"logs/{build_id}/{attempt:03d}") if k.endswith(".jsonl")]
    mirror = store.home / "remote" / "logs" / f"{build_id}-{attempt}.jsonl"
    mirror.parent.mkdir(parents=True, exist_ok=True)
    have = mirror.stat().st_size if mirror.is_file() else 0
    with open(mirror, "ab") as out:
        for key in keys:
            start = int(Path(key).stem)
            if start < have:
                continue
            if start > have:
                break
            data = shared.get_named(key)
            if data is None:
                break
            out.write(data)
            have += len(data)
    return mirror


def shipped_in_full(store: Store, build: BuildRecord, attempt: int | None = None) -> bool:
    """Whether the whole log (of ``attempt``, default the latest shipped) is readable here: a log of
    this data directory (the build process wrote it to the end), no shared store, or the worker's end
    mark shipped."""
    own = Path(build.log_path) if build.log_path else None
    shared = shared_store(store)
    if shared is None or (own is not None and own.is_file() and own.is_relative_to(store.home)):
        return True
    if attempt is None:
        attempt = max(shipped_attempts(shared, build.id), default=0)
    return shared.get_named(end_key(build.id, attempt)) is not None


def wait_shipped(
    store: Store, build: BuildRecord, seconds: float = END_WAIT, attempt: int | None = None
) -> bool:
    """After the build ended: wait (up to ``seconds``) for its worker's last ship; False if it never came
    (the worker died with the build: the log then ends where the last ship did)."""
    deadline = time.monotonic() + seconds
    while not shipped_in_full(store, build, attempt):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True
