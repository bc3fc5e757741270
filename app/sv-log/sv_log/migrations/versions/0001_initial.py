"""Initial schema of sv-log.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(128), nullable=True),
        sa.Column("region", sa.String(32), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=True),
    )
    op.create_index("ix_log_records_ts", "log_records", ["ts"])
    op.create_index("ix_log_records_trace_id", "log_records", ["trace_id"])
    op.create_index("ix_log_records_service_ts", "log_records", ["service", "ts"])


def downgrade() -> None:
    op.drop_table("log_records")
