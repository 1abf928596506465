"""component and recipe registry

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _published_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("published_by", sa.String(length=255), nullable=False),
        sa.Column("published", sa.DateTime(), nullable=False),
        sa.Column("deprecated_by", sa.String(length=255), nullable=True),
        sa.Column("deprecated", sa.DateTime(), nullable=True),
        sa.Column("deprecation_reason", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    for table, extra in (
        (
            "registry_components",
            [
                sa.Column("platform", sa.String(length=16), nullable=False),
                sa.Column("builtin", sa.Boolean(), nullable=False),
            ],
        ),
        ("registry_recipes", [sa.Column("components", sa.JSON(), nullable=False)]),
    ):
        op.create_table(
            table,
            *_published_columns(),
            *extra,
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("name", "version", name=f"uq_{table}_name_version"),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_name"), ["name"], unique=False)


def downgrade() -> None:
    for table in ("registry_recipes", "registry_components"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_name"))
        op.drop_table(table)
