"""The double-entry ledger: accounts, an append-only journal, transfers, holds, the
cross-region outbox and inbound decisions, idempotency keys.

Replaces the skeleton's ``accounts`` table (it never held data).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ts = sa.DateTime(timezone=True)

_PG_APPEND_ONLY = """
CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$
"""


def upgrade() -> None:
    op.drop_table("accounts")
    op.create_table(
        "accounts",
        sa.Column("id", _serial, primary_key=True, autoincrement=True),
        sa.Column("owner_kind", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.UniqueConstraint("owner_kind", "owner", "currency", name="uq_accounts_owner_currency"),
        # The last line of defence: even a bug in the service cannot overdraw an account.
        sa.CheckConstraint("held >= 0", name="ck_accounts_held"),
        sa.CheckConstraint(
            "allow_negative OR balance - held >= 0", name="ck_accounts_no_overdraft"
        ),
    )
    op.create_table(
        "entries",
        sa.Column("id", _serial, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("transfer_id", sa.String(36), nullable=True),
        sa.Column("reverses", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("created_at", _ts, nullable=False),
    )
    op.create_index("ix_entries_transfer_id", "entries", ["transfer_id"])
    op.create_table(
        "postings",
        sa.Column("id", _serial, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.BigInteger(), sa.ForeignKey("entries.id"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount"),
    )
    op.create_index("ix_postings_entry_id", "postings", ["entry_id"])
    op.create_index("ix_postings_account_id", "postings", ["account_id"])
    op.create_table(
        "transfers",
        sa.Column("seq", _serial, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payer_id", sa.String(64), nullable=True),
        sa.Column("payer_username", sa.String(64), nullable=True),
        sa.Column("payer_region", sa.String(32), nullable=True),
        sa.Column("payee_id", sa.String(64), nullable=False),
        sa.Column("payee_username", sa.String(64), nullable=False),
        sa.Column("payee_region", sa.String(32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("memo", sa.String(140), nullable=True),
        sa.Column("hold_id", sa.String(36), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("initiated_by", sa.String(64), nullable=True),
        sa.Column("failure_reason", sa.String(200), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.CheckConstraint("amount > 0 AND fee >= 0", name="ck_transfers_amount"),
    )
    op.create_index("ix_transfers_payer_seq", "transfers", ["payer_id", "seq"])
    op.create_index("ix_transfers_payee_seq", "transfers", ["payee_id", "seq"])
    op.create_table(
        "holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("payee_id", sa.String(64), nullable=False),
        sa.Column("payee_username", sa.String(64), nullable=False),
        sa.Column("payee_region", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.String(140), nullable=True),
        sa.Column("transfer_id", sa.String(36), nullable=True),
        sa.Column("expires_at", _ts, nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.CheckConstraint("amount > 0 AND captured >= 0 AND captured <= amount", name="ck_holds"),
    )
    op.create_index("ix_holds_status_expires", "holds", ["status", "expires_at"])
    op.create_table(
        "outbox",
        sa.Column("transfer_id", sa.String(36), primary_key=True),
        sa.Column("peer_region", sa.String(32), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts, nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
    )
    op.create_index("ix_outbox_state_next", "outbox", ["state", "next_attempt_at"])
    op.create_table(
        "inbound_transfers",
        sa.Column("transfer_id", sa.String(36), primary_key=True),
        sa.Column("origin_region", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payee_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
    )
    op.create_index("ix_inbound_origin", "inbound_transfers", ["origin_region", "transfer_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
    )
    _append_only("entries")
    _append_only("postings")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        if table == "entries":
            op.execute(_PG_APPEND_ONLY)
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION journal_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END"
        )


def downgrade() -> None:
    for table in (
        "idempotency_keys",
        "inbound_transfers",
        "outbox",
        "holds",
        "transfers",
        "postings",
        "entries",
        "accounts",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION journal_append_only()")
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("allow_negative", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("owner", "currency"),
    )
