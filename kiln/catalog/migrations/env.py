"""Alembic environment: run by :func:`kiln.catalog.migrate.upgrade` with a live connection."""

from __future__ import annotations

from alembic import context

from kiln.catalog.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - Kiln always passes its connection
    raise RuntimeError("kiln catalog migrations run only through kiln.catalog.migrate")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
