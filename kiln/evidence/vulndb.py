"""The local vulnerability database: one SQLite file in the data dir, filled by feed importers.

Each row says, for one (release codename, source package, vulnerability id), what a feed knows:
``fixed`` (with the fixed version, ``0`` meaning never affected), ``open`` (no fix yet) or
``undetermined``. Importing a feed replaces all rows of that feed in one transaction, so a failed
import leaves the previous data intact.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from kiln.errors import KilnError
from kiln.store import Store

Status = Literal["fixed", "open", "undetermined"]
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, location TEXT NOT NULL, digest TEXT NOT NULL,
    imported_at REAL NOT NULL, records INTEGER NOT NULL, vulnerabilities INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    source TEXT NOT NULL, release TEXT NOT NULL, package TEXT NOT NULL, vuln_id TEXT NOT NULL,
    status TEXT NOT NULL, fixed TEXT, urgency TEXT, note TEXT,
    PRIMARY KEY (release, package, vuln_id, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS descriptions (
    source TEXT NOT NULL, vuln_id TEXT NOT NULL, description TEXT NOT NULL, PRIMARY KEY (vuln_id, source)
) WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS records_source ON records (source);
CREATE INDEX IF NOT EXISTS records_vuln ON records (vuln_id);
"""

# When two feeds describe the same (vulnerability, package), the first listed wins.
SOURCE_PRIORITY = ("debian-tracker", "osv-debian")


class Record(NamedTuple):
    """One feed's statement about one (release, source package, vulnerability)."""

    release: str
    package: str
    vuln_id: str
    status: Status
    fixed: str | None = None
    urgency: str | None = None
    note: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    location: str
    digest: str
    imported_at: float
    records: int
    vulnerabilities: int


class VulnDbError(KilnError):
    """The vulnerability database is missing, empty or cannot be read."""


def _upgrade(conn: sqlite3.Connection) -> None:
    """A database from an older layout is dropped: feeds are re-imported, never converted."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if not has_meta:
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None and row[0] != str(SCHEMA_VERSION):
        conn.executescript(
            "DROP TABLE IF EXISTS records; DROP TABLE IF EXISTS descriptions; DROP TABLE IF EXISTS sources; "
            "DROP TABLE IF EXISTS meta;"
        )


def default_path(store: Store) -> Path:
    return store.home / "vulndb.sqlite"


class VulnDb:
    """Open with :meth:`open`; a thin layer over sqlite3 (no ORM: two tables, bulk inserts)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, store: Store) -> VulnDb:
        return cls(default_path(store))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            _upgrade(conn)
            conn.executescript(_SCHEMA)
            conn.executescript(_INDEXES)
            yield conn

    def replace_source(self, info: SourceInfo, records: Iterable[Record]) -> SourceInfo:
        """Atomically replace every row of ``info.name`` with ``records``; returns the final counts.

        ``records`` may be a generator: an exception while it is consumed rolls everything back.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM records WHERE source = ?", (info.name,))
                conn.execute("DELETE FROM descriptions WHERE source = ?", (info.name,))
                # Bulk load without the secondary index, rebuilt once at the end (same transaction).
                conn.execute("DROP INDEX IF EXISTS records_source")
                conn.execute("DROP INDEX IF EXISTS records_vuln")
                descriptions: dict[str, str] = {}

                def rows() -> Iterator[tuple[str | None, ...]]:
                    for r in records:
                        if r.description and r.vuln_id not in descriptions:
                            descriptions[r.vuln_id] = r.description
                        yield (
                            info.name,
                            r.release,
                            r.package,
                            r.vuln_id,
                            r.status,
                            r.fixed,
                            r.urgency,
                            r.note,
                        )

                # A feed may list one (release, package, vuln) twice (OSV: several records): last wins.
                conn.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
                conn.executemany(
                    "INSERT INTO descriptions VALUES (?, ?, ?)",
                    ((info.name, vid, text) for vid, text in descriptions.items()),
                )
                for statement in filter(str.strip, _INDEXES.split(";")):
                    conn.execute(statement)  # not executescript(): it would commit
                count, vulns = conn.execute(
                    "SELECT count(*), count(DISTINCT vuln_id) FROM records WHERE source = ?", (info.name,)
                ).fetchone()
                if count == 0:
                    raise VulnDbError(f"{info.location}: no vulnerability records found for {info.kind}")
                final = SourceInfo(
                    info.name, info.kind, info.location, info.digest, time.time(), count, vulns
                )
                conn.execute(
                    "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        final.name,
                        final.kind,
                        final.location,
                        final.digest,
                        final.imported_at,
                        final.records,
                        final.vulnerabilities,
                    ),
                )
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return final

    def require_data(self) -> list[SourceInfo]:
        """The imported feeds; VulnDbError when there are none."""
        sources = self.sources()
        if not sources:
            raise VulnDbError(
                "the vulnerability database is empty",
                hint="import a feed first: kiln vulndb import https://security-tracker.debian.org/tracker/data/json",
            )
        return sources

    def sources(self) -> list[SourceInfo]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM sources ORDER BY name").fetchall()
        return [SourceInfo(*row) for row in rows]

    def lookup(self, release: str, packages: Sequence[str]) -> list[Record]:
        """All records for ``packages`` (source names) in ``release``, one per (vuln, package), unordered.

        When several feeds know the same pair, the one earliest in SOURCE_PRIORITY wins.
        """
        sources = self.require_data()
        with self._connect() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (name TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM wanted")
            conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", ((p,) for p in packages))
            # Records with fixed version "0" (never affected) cannot produce a finding: skip them here.
            rows = conn.execute(
                "SELECT r.source, r.package, r.vuln_id, r.status, r.fixed, r.urgency, r.note "
                "FROM wanted CROSS JOIN records r ON r.release = ? AND r.package = wanted.name "
                "WHERE NOT (r.status = 'fixed' AND r.fixed = '0')",
                (release,),
            ).fetchall()
        if len(sources) == 1:  # the primary key makes (package, vuln) unique within one feed
            return [Record(release, *row[1:]) for row in rows]
        rank = {name: i for i, name in enumerate(SOURCE_PRIORITY)}
        best: dict[tuple[str, str], tuple[int, Record]] = {}
        for source, *fields in rows:
            r = rank.get(source, len(rank))
            key = (fields[1], fields[0])
            if key not in best or r < best[key][0]:
                best[key] = (r, Record(release, *fields))
        return [record for _, record in best.values()]

    def records_of(self, vuln_id: str) -> list[Record]:
        """Every release's record of one vulnerability (``kiln images list --cve``), one per
        (release, package): the feed earliest in SOURCE_PRIORITY wins, as in :meth:`lookup`."""
        self.require_data()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT source, release, package, vuln_id, status, fixed, urgency, note FROM records "
                "WHERE vuln_id = ?",
                (vuln_id,),
            ).fetchall()
        rank = {name: i for i, name in enumerate(SOURCE_PRIORITY)}
        best: dict[tuple[str, str], tuple[int, Record]] = {}
        for source, *fields in rows:
            r = rank.get(source, len(rank))
            key = (fields[0], fields[1])
            if key not in best or r < best[key][0]:
                best[key] = (r, Record(*fields))
        return [record for _, record in sorted(best.values(), key=lambda b: (b[1].release, b[1].package))]

    def descriptions(self, vuln_ids: Sequence[str]) -> dict[str, str]:
        """Descriptions of ``vuln_ids`` (from the highest-priority feed that has one)."""
        rank = {name: i for i, name in enumerate(SOURCE_PRIORITY)}
        found: dict[str, tuple[int, str]] = {}
        with self._connect() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_ids (id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM wanted_ids")
            conn.executemany("INSERT OR IGNORE INTO wanted_ids VALUES (?)", ((v,) for v in vuln_ids))
            rows = conn.execute(
                "SELECT d.source, d.vuln_id, d.description FROM wanted_ids w "
                "CROSS JOIN descriptions d ON d.vuln_id = w.id"
            ).fetchall()
        for source, vuln_id, text in rows:
            r = rank.get(source, len(rank))
            if vuln_id not in found or r < found[vuln_id][0]:
                found[vuln_id] = (r, text)
        return {k: v for k, (_, v) in found.items()}
