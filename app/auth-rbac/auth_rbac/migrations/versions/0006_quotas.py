"""Quotas and flow limits (app, tenant, route, service) and their version row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rbac_quota",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("qps", sa.Integer()),
        sa.Column("qpd", sa.BigInteger()),
        sa.Column("concurrency", sa.Integer()),
        sa.Column("burst", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("timezone", sa.String(64)),
        sa.Column("on_redis_down", sa.String(16), nullable=False, server_default="local"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("kind", "tenant", "target"),
    )
    version = op.create_table(
        "rbac_quota_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("rbac_quota_version")
    op.drop_table("rbac_quota")
