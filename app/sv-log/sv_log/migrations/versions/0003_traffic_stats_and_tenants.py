"""Traffic statistics (minute, hour and day tables, batch keys) and tenant/app on records.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Latency histogram buckets: the gateway's 13 bounds and +Inf (sv_log.stats.schemas).
BUCKETS = 14
TABLES = ("stats_minute", "stats_hour", "stats_day")


def _stats_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("route", sa.String(256), nullable=False),
        sa.Column("status_class", sa.String(3), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("latency_us", sa.BigInteger(), nullable=False),
        *(sa.Column(f"b{i}", sa.BigInteger(), nullable=False) for i in range(BUCKETS)),
        sa.PrimaryKeyConstraint("start", "tenant", "app", "route", "status_class"),
    )
    op.create_index(f"ix_{name}_tenant_start", name, ["tenant", "start"])


def upgrade() -> None:
    for name in TABLES:
        _stats_table(name)
    op.create_table(
        "stats_batches",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("received", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_stats_batches_received", "stats_batches", ["received"])
    with op.batch_alter_table("log_records") as batch:
        batch.add_column(sa.Column("tenant", sa.String(128), nullable=True))
        batch.add_column(sa.Column("app", sa.String(128), nullable=True))
    op.create_index("ix_log_records_tenant_ts", "log_records", ["tenant", "ts"])


def downgrade() -> None:
    op.drop_index("ix_log_records_tenant_ts", table_name="log_records")
    with op.batch_alter_table("log_records") as batch:
        batch.drop_column("app")
        batch.drop_column("tenant")
    op.drop_table("stats_batches")
    for name in TABLES:
        op.drop_table(name)
