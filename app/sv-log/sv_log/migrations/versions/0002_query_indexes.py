"""Indexes for keyset pages, request ids and (PostgreSQL) full-text search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FTS_INDEX = "ix_log_records_message_fts"


def upgrade() -> None:
    # Pages are ordered by (ts, id): one index serves both the order and the cursor.
    op.drop_index("ix_log_records_ts", table_name="log_records")
    op.create_index("ix_log_records_ts_id", "log_records", ["ts", "id"])
    op.create_index("ix_log_records_request_id", "log_records", ["request_id"])
    if op.get_bind().dialect.name == "postgresql":
        # Must match the query's expression exactly (sv_log.repository) to be used.
        op.execute(
            f"CREATE INDEX {FTS_INDEX} ON log_records "
            "USING gin (to_tsvector('simple'::regconfig, message))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {FTS_INDEX}")
    op.drop_index("ix_log_records_request_id", table_name="log_records")
    op.drop_index("ix_log_records_ts_id", table_name="log_records")
    op.create_index("ix_log_records_ts", "log_records", ["ts"])
