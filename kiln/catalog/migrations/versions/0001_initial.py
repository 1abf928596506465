"""initial catalog schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:33:34.711926
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "builds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("recipe_name", sa.String(length=255), nullable=False),
        sa.Column("recipe_version", sa.String(length=64), nullable=False),
        sa.Column("recipe_path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_start", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
    )
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_builds_status"), ["status"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("build_number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("recorded", sa.DateTime(), nullable=False),
        sa.Column("parent", sa.String(length=512), nullable=False),
        sa.Column("parent_digest", sa.String(length=100), nullable=True),
        sa.Column("recipe_digest", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("build_id", sa.String(length=32), nullable=False),
        sa.Column("lock", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["build_id"], ["builds.id"], name=op.f("fk_images_build_id_builds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("build_id", name=op.f("uq_images_build_id")),
        sa.UniqueConstraint("name", "version", "build_number", name="uq_images_name_version_build"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_digest"), ["digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_name"), ["name"], unique=False)

    op.create_table(
        "image_artifacts",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_artifacts_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_artifacts")),
    )
    with op.batch_alter_table("image_artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_artifacts_image_id"), ["image_id"], unique=False)

    op.create_table(
        "image_components",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_components_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_components")),
    )
    with op.batch_alter_table("image_components", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_components_image_id"), ["image_id"], unique=False)

    op.create_table(
        "image_evidence",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_evidence_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_evidence")),
    )
    with op.batch_alter_table("image_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_evidence_image_id"), ["image_id"], unique=False)

    op.create_table(
        "image_packages",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("source_version", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_packages_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_packages")),
    )
    with op.batch_alter_table("image_packages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_packages_image_id"), ["image_id"], unique=False)
        batch_op.create_index("ix_image_packages_name_version", ["name", "version"], unique=False)
        batch_op.create_index(batch_op.f("ix_image_packages_source"), ["source"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("image_packages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_packages_source"))
        batch_op.drop_index("ix_image_packages_name_version")
        batch_op.drop_index(batch_op.f("ix_image_packages_image_id"))

    op.drop_table("image_packages")
    with op.batch_alter_table("image_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_evidence_image_id"))

    op.drop_table("image_evidence")
    with op.batch_alter_table("image_components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_components_image_id"))

    op.drop_table("image_components")
    with op.batch_alter_table("image_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_artifacts_image_id"))

    op.drop_table("image_artifacts")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_name"))
        batch_op.drop_index(batch_op.f("ix_images_digest"))

    op.drop_table("images")
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_builds_status"))

    op.drop_table("builds")
