"""image lifecycle: state change history; the state formerly called deleted is retired

Revision ID: 0005
Revises: 0006
Create Date: 2026-12-02 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_state_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_state_changes_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_state_changes")),
    )
    with op.batch_alter_table("image_state_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_state_changes_image_id"), ["image_id"], unique=False)
    op.execute("UPDATE images SET state = 'retired' WHERE state = 'deleted'")


def downgrade() -> None:
    op.execute("UPDATE images SET state = 'deleted' WHERE state = 'retired'")
    with op.batch_alter_table("image_state_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_state_changes_image_id"))
    op.drop_table("image_state_changes")
