"""Regions carry their endpoints, discovery source and assignment weight; assignment rules.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("regions") as batch:
        batch.add_column(sa.Column("endpoints", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("discovery", sa.String(128), nullable=False, server_default="static")
        )
        batch.add_column(sa.Column("weight", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "assignment_rules",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="100"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("match", sa.String(64), nullable=False),
        sa.Column("region", sa.String(32), sa.ForeignKey("regions.name"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "match"),
    )


def downgrade() -> None:
    op.drop_table("assignment_rules")
    with op.batch_alter_table("regions") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("weight")
        batch.drop_column("discovery")
        batch.drop_column("endpoints")
