"""index images.parent_digest (children and lineage of an image are found by its digest)

Revision ID: 0007
Revises: 0003 (the lead re-chains it at merge)
Create Date: 2026-12-02 08:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_parent_digest"), ["parent_digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_parent_digest"))
