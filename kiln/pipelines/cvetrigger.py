"""The ``cve`` trigger: a vulnerability-database import shows a fixable finding at or above the
pipeline's ``cve_severity`` in its newest image → one run, with ``refresh``, caused by those CVEs.

Evaluated with the other triggers on every scheduler pass, from catalog package lists and the local
database (no image is unpacked). A set of CVEs is acted on until a run for it succeeds: a failed or
interrupted run leaves it open, and it is queued again after a back-off, a bounded number of times,
never while a run for it is queued or running (:mod:`kiln.pipelines.cveretry`). Before queueing,
the archive is asked whether it carries the fixed versions yet (kiln.build.freshness); if not, the
run is recorded ``skipped`` with that reason, once per archive state, and the archive is asked again
hourly, so a later archive with the fix starts the rebuild.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from kiln.build.freshness import ImageUpdates, image_updates
from kiln.catalog import Catalog
from kiln.catalog.pipelines import PipelineRunRow
from kiln.errors import KilnError
from kiln.events.cve import debian_release
from kiln.evidence.debversion import compare
from kiln.evidence.vulndb import VulnDb
from kiln.evidence.vulnscan import Finding, match, severity_rank
from kiln.pipelines.cveretry import MAX_ATTEMPTS, CauseState, cause_state
from kiln.pipelines.records import PipelineRecord, RunRecord
from kiln.pipelines.store import PipelineStore
from kiln.store import Store

log = logging.getLogger("kiln.pipelines")
ARCHIVE_RECHECK = timedelta(hours=1)  # how often an archive without the fix is asked again
Updates = Callable[[str], ImageUpdates]  # image ref -> its available updates (injectable in tests)


def fixable_findings(catalog: Catalog, db: VulnDb, ref: str, threshold: str) -> list[Finding]:
    """Fixable findings of image ``ref`` at or above ``threshold`` (Debian rules, source packages)."""
    release = debian_release(catalog.lineage(ref)[-1].ref)
    if release is None:
        return []
    sources: dict[str, tuple[str, list[str]]] = {}
    for p in catalog.packages(ref):
        source, version = p.source or p.name, p.source_version or p.version
        if source not in sources or compare(version, sources[source][0]) < 0:
            sources[source] = (version, [*sources.get(source, ("", []))[1], p.name])
        else:
            sources[source][1].append(p.name)
    floor = severity_rank(threshold)
    return [
        f
        for f in match(db.lookup(release, sorted(sources)), sources)
        if f.status == "fixable" and severity_rank(f.severity) >= floor
    ]


def in_archive(finding: Finding, updates: ImageUpdates) -> str | None:
    """The archive's version of the finding's source package when it carries the fix, else None."""
    assert finding.fixed is not None
    for u in updates.report.updates:
        if u.source == finding.package and compare(u.available_source_version, finding.fixed) >= 0:
            return u.available_source_version
    return None


def evaluate_all(store: Store, catalog: Catalog, now: datetime) -> tuple[list[RunRecord], list[RunRecord]]:
    """The ``cve`` trigger of every pipeline, now (``kiln vulndb import`` calls it after importing, so
    the runs are queued at once and a daemon builds them): (queued, skipped)."""
    runs = PipelineStore(catalog)
    trigger = CveTrigger(store, catalog)
    queued: list[RunRecord] = []
    skipped: list[RunRecord] = []
    for pipeline in runs.pipelines():
        trigger(runs, pipeline, now, queued, skipped)
    return queued, skipped


class CveTrigger:
    """One per scheduler. It remembers what it already looked at, so an idle daemon's pass costs two
    small queries per pipeline: an (image, database) pair with nothing to act on is not matched again,
    and an archive without the fix is asked again only after :data:`ARCHIVE_RECHECK`."""

    def __init__(self, store: Store, catalog: Catalog, updates: Updates | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.updates: Updates = updates or (lambda ref: image_updates(store, catalog, ref))
        self._db: tuple[tuple[object, ...], VulnDb, tuple[object, ...]] | None = None
        self._done: dict[str, tuple[object, ...]] = {}  # pipeline -> (image, threshold, db) looked at
        self._next_look: dict[str, datetime] = {}  # a waiting set of CVEs -> when to ask the archive
        # pipeline -> (what was looked at, its findings): a cause still open is not matched again
        self._findings: dict[str, tuple[tuple[object, ...], list[Finding]]] = {}

    def _database(self) -> tuple[VulnDb, tuple[object, ...]]:
        """The database and its feeds' identity, read again only when its files changed (a stat)."""
        db = VulnDb.open(self.store)
        files: list[tuple[int, int, int] | None] = []
        for path in (db.path, db.path.with_name(db.path.name + "-wal")):
            try:
                info = path.stat()
                files.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except FileNotFoundError:
                files.append(None)
        stamp = tuple(files)
        if self._db is None or self._db[0] != stamp:
            if files[0] is None:
                return db, ()  # no database yet (reading it would create it)
            self._db = (stamp, db, tuple((s.name, s.digest, s.imported_at) for s in db.sources()))
        return self._db[1], self._db[2]

    def _recorded(self, pipeline: str, key: str) -> bool:
        with self.catalog.session() as s:
            found = s.scalar(
                select(PipelineRunRow.id)
                .where(PipelineRunRow.pipeline == pipeline, PipelineRunRow.cause_key == key[:512])
                .limit(1)
            )
        return found is not None

    def __call__(
        self, runs: PipelineStore, p: PipelineRecord, now: datetime, queued: list[RunRecord],
        skipped: list[RunRecord],
    ) -> None:  # fmt: skip
        if "cve" not in p.pipeline.triggers or not p.enabled:
            return
        db, feeds = self._database()
        if not feeds:
            return
        try:
            ref = self.catalog.get_image(p.image).ref
        except KilnError:
            return  # nothing built yet
        looked = (ref, p.pipeline.cve_severity, feeds)
        if self._done.get(p.name) == looked:
            return
        memo = self._findings.get(p.name)
        if memo is None or memo[0] != looked:
            memo = self._findings[p.name] = (
                looked,
                fixable_findings(self.catalog, db, ref, p.pipeline.cve_severity),
            )
        findings = memo[1]
        ids = sorted({f.vuln_id for f in findings})
        key = f"cve:{ref}:{','.join(ids)}"
        if not findings:
            self._done[p.name] = looked
            return
        state = cause_state(self.catalog, p.name, key)
        if state.handled:
            self._done[p.name] = looked
            return
        if state.active or now < self._next_look.get(key, now):
            return
        if state.exhausted:
            self._done[p.name] = looked
            self._give_up(runs, p, ref, key, ids, state, now, skipped)
            return
        if state.retry_at is not None and now < state.retry_at:
            return
        listed = "; ".join(f"{f.vuln_id} ({f.severity}) in {f.package} {f.installed}, fixed in {f.fixed}"
                           for f in findings[:5])  # fmt: skip
        try:
            updates = self.updates(ref)
        except KilnError as exc:
            log.warning("pipeline %s: %s: the archive could not be checked: %s", p.name, listed, exc)
            return
        ready = [(f, v) for f in findings if (v := in_archive(f, updates)) is not None]
        if not ready:
            self._next_look[key] = now + ARCHIVE_RECHECK
            archive = hashlib.sha256(",".join(s.sha256 for s in updates.report.archive).encode()).hexdigest()
            waiting = f"{key}:no-fix:{archive[:16]}"
            if not self._recorded(p.name, waiting):
                reason = f"the archive has no fix yet for {', '.join(ids)} (checked {ref}'s suites)"
                skipped.append(runs.skip(p.name, "cve", f"{listed} in {ref}", waiting, now, reason))
            return
        fixes = "; ".join(f"{f.vuln_id} ({f.severity}): {f.package} {f.installed} -> {v}" for f, v in ready)
        cause = f"{fixes} in {ref} (fixed in the archive)"
        if state.failures:
            cause += f"; attempt {state.failures + 1} of {MAX_ATTEMPTS}, after {state.describe_last()}"
        run = runs.enqueue(p.name, "cve", cause, key, now)
        if run is not None:
            queued.append(run)

    def _give_up(
        self, runs: PipelineStore, p: PipelineRecord, ref: str, key: str, ids: list[str], state: CauseState,
        now: datetime, skipped: list[RunRecord],
    ) -> None:  # fmt: skip
        """Say once that the cause is not queued again (a manual run is how to try once more)."""
        gave_up = f"{key}:gave-up"
        if self._recorded(p.name, gave_up):
            return
        reason = (f"not queued again: {state.failures} runs for {', '.join(ids)} did not succeed (the last: "
                  f"{state.describe_last()}); start one with: kiln pipelines run {p.name}")  # fmt: skip
        skipped.append(runs.skip(p.name, "cve", f"{', '.join(ids)} in {ref}", gave_up, now, reason))
