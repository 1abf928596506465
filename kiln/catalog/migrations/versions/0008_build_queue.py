"""scale-out: queued builds, their attempts, workers; Procrastinate's schema (PostgreSQL only)

Procrastinate's own tables, types and functions are created here, from the schema file of the pinned
Procrastinate version, in the same transaction as Kiln's tables: ``kiln db upgrade`` / opening the
catalog is the one way a schema is made, and a half-applied queue schema cannot exist. A later
Procrastinate upgrade that changes its schema ships as another Kiln migration applying its
``sql/migrations`` file(s).

Revision ID: 0008
Revises: 0009
Create Date: 2026-12-02 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "build_jobs",
        sa.Column("build_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("queueing_lock", sa.String(length=64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"], ["builds.id"], name=op.f("fk_build_jobs_build_id_builds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("build_id", name=op.f("pk_build_jobs")),
    )
    with op.batch_alter_table("build_jobs") as batch:
        batch.create_index(batch.f("ix_build_jobs_job_id"), ["job_id"], unique=False)
    op.create_table(
        "build_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("build_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["build_id"], ["builds.id"], name=op.f("fk_build_attempts_build_id_builds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_attempts")),
        sa.UniqueConstraint("build_id", "attempt", name="uq_build_attempts_build_attempt"),
    )
    with op.batch_alter_table("build_attempts") as batch:
        batch.create_index(batch.f("ix_build_attempts_build_id"), ["build_id"], unique=False)
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("stopped", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # The driver's simple-query protocol runs the whole multi-statement file, unparsed by SQLAlchemy.
        bind.connection.driver_connection.execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _drop_procrastinate(bind)
    op.drop_table("workers")
    with op.batch_alter_table("build_attempts") as batch:
        batch.drop_index(batch.f("ix_build_attempts_build_id"))
    op.drop_table("build_attempts")
    with op.batch_alter_table("build_jobs") as batch:
        batch.drop_index(batch.f("ix_build_jobs_job_id"))
    op.drop_table("build_jobs")


def _drop_procrastinate(bind: sa.Connection) -> None:
    """Every table, function and type Procrastinate's schema created (all named ``procrastinate_*``)."""
    tables = (
        bind.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename LIKE 'procrastinate%'"
            )
        )
        .scalars()
        .all()
    )
    for table in tables:
        bind.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    functions = (
        bind.execute(
            sa.text(
                "SELECT p.oid::regprocedure::text FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'"
            )
        )
        .scalars()
        .all()
    )
    for function in functions:
        bind.execute(sa.text(f"DROP FUNCTION IF EXISTS {function} CASCADE"))
    types = (
        bind.execute(
            sa.text(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%' "
                "AND t.typtype IN ('e', 'c')"
            )
        )
        .scalars()
        .all()
    )
    for type_ in types:
        bind.execute(sa.text(f'DROP TYPE IF EXISTS "{type_}" CASCADE'))
