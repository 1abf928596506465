"""distribution jobs and promotion decisions

Revision ID: 0003
Revises: 0001 (the lead re-chains it after 0002, API tokens, at merge)
Create Date: 2026-12-02 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "distributions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("config_digest", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("external", sa.JSON(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requester", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_distributions_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distributions")),
    )
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_distributions_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_distributions_status"), ["status"], unique=False)

    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_name", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=True),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_promotions_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
    )
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_promotions_image_id"), ["image_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_promotions_image_name"), ["image_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotions_image_name"))
        batch_op.drop_index(batch_op.f("ix_promotions_image_id"))
    op.drop_table("promotions")
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_distributions_status"))
        batch_op.drop_index(batch_op.f("ix_distributions_image_id"))
    op.drop_table("distributions")
