"""Schema migrations, run programmatically when a catalog is opened (no alembic.ini needed)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from kiln.catalog.models import Base
from kiln.errors import KilnError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(str(files("kiln.catalog") / "migrations"))

# The newest migration's revision. Opening an up-to-date catalog compares against this constant and
# never imports Alembic (half a second of start-up); a test keeps it equal to Alembic's own head.
SCHEMA_HEAD = "0011"


def stored_revision(engine: Engine) -> str | None:
    """The revision recorded in the database (None for an empty one), read without Alembic."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; concurrent openers wait for each other."""
    if revision == "head" and stored_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    current = current_revision(engine)
    if revision == "head" and current == head_revision():
        return
    if current is not None and not _known(current):
        raise KilnError(
            f"the catalog's schema (revision {current}) is newer than this version of Kiln knows",
            hint="upgrade Kiln, or point KILN_DATABASE_URL / --data-dir at another catalog",
        )
    with _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(4711)"))
        command.upgrade(alembic_config(conn), revision)


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the ORM models and the migrated database (empty when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _kiln_name})
        return list(compare_metadata(ctx, Base.metadata))


def _kiln_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Procrastinate's tables live in the same database (PostgreSQL) but are not Kiln's models."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
