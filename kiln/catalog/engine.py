"""Database engines for the catalog: SQLite (default, embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from kiln.errors import KilnError

WRITE = "kiln_write"
"""Execution option marking connections that will write (SQLite takes the write lock up front)."""

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> URL:
    """Parse a catalog URL; ``postgresql://`` and ``postgres://`` use psycopg 3."""
    try:
        parsed = make_url(
            url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url
        )
    except ArgumentError as exc:
        raise KilnError(
            f"invalid catalog database URL {url!r}",
            hint="use sqlite:////path/to/catalog.db or postgresql://user:password@host:port/dbname",
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise KilnError(
            f"unsupported catalog database {parsed.get_backend_name()!r}",
            hint="Kiln's catalog runs on SQLite (default) or PostgreSQL",
        )
    return parsed


def make_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KilnError(
                f"cannot create the catalog's directory {Path(url.database).parent}: {exc.strerror}",
                hint="choose another data directory (--data-dir, KILN_HOME) or KILN_DATABASE_URL",
            ) from exc
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it
        # past DDL and reads, which breaks transactional migrations and write locking).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if url.database and url.database != ":memory:":
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A writer takes the lock at BEGIN, so two builds finishing at once queue up instead of
        # failing with "database is locked" when a read lock is upgraded.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine
