"""pipelines: the registry component versions each pipeline has seen (the component trigger)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        # Existing pipelines have seen no component version yet: their next re-apply records them.
        batch_op.add_column(sa.Column("component_cursor", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("pipelines", schema=None) as batch_op:
        batch_op.drop_column("component_cursor")
