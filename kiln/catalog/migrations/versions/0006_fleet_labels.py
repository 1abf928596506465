"""image labels; indexes for fleet queries (state, parent, parent digest)

Revision ID: 0006
Revises: 0008
Create Date: 2026-12-02 08:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=317), nullable=False),
        sa.Column("value", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_labels_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_labels")),
        sa.UniqueConstraint("image_id", "key", name="uq_image_labels_image_key"),
    )
    with op.batch_alter_table("image_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_labels_image_id"), ["image_id"], unique=False)
        batch_op.create_index("ix_image_labels_key_value", ["key", "value"], unique=False)
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_parent"), ["parent"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_parent_digest"), ["parent_digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_parent_digest"))
        batch_op.drop_index(batch_op.f("ix_images_parent"))
        batch_op.drop_index(batch_op.f("ix_images_state"))
    with op.batch_alter_table("image_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_image_labels_key_value")
        batch_op.drop_index(batch_op.f("ix_image_labels_image_id"))
    op.drop_table("image_labels")
