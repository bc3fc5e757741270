"""sv-money's tables, as SQLAlchemy Core (the ledger's SQL is explicit, not ORM-managed).

Amounts are integers in the currency's minor units. The journal (``entries`` and
``postings``) is append-only: the migration installs triggers that refuse UPDATE and
DELETE on it, so a correction can only be a new, reversing entry.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from edgelib.db import UTCDateTime as UTCDateTime
from edgelib.db import utcnow as utcnow

#: SQLite makes an auto-incrementing key only of a column typed exactly INTEGER.
Serial = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    # "user" (owner is a user id) or "system" (owner names the account: topup, fees,
    # clearing:<region>).
    Column("owner_kind", String(8), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    # Sum of the open holds on the account: reserved, not yet posted.
    Column("held", BigInteger, nullable=False),
    Column("allow_negative", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_kind", "owner", "currency", name="uq_accounts_owner_currency"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    # transfer, topup, capture, xregion-out, xregion-in, reversal
    Column("kind", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("transfer_id", String(36), nullable=True),
    # The entry this one reverses; an entry is reversed at most once.
    Column("reverses", BigInteger, nullable=True, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_entries_transfer_id", "transfer_id"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    # Signed: positive credits the account (raises its balance), negative debits it.
    Column("amount", BigInteger, nullable=False),
    Index("ix_postings_entry_id", "entry_id"),
    Index("ix_postings_account_id", "account_id"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    # transfer, topup, capture (of a hold)
    Column("kind", String(16), nullable=False),
    # pending (cross-region, in flight), completed, failed, reversed
    Column("status", String(16), nullable=False),
    Column("payer_id", String(64), nullable=True),
    Column("payer_username", String(64), nullable=True),
    Column("payer_region", String(32), nullable=True),
    Column("payee_id", String(64), nullable=False),
    Column("payee_username", String(64), nullable=False),
    Column("payee_region", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("memo", String(140), nullable=True),
    Column("hold_id", String(36), nullable=True),
    Column("entry_id", BigInteger, nullable=True),
    Column("initiated_by", String(64), nullable=True),
    Column("failure_reason", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_transfers_payer_seq", "payer_id", "seq"),
    Index("ix_transfers_payee_seq", "payee_id", "seq"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(36), primary_key=True),
    # hold (asked for by a user), transfer (reserves a cross-region transfer)
    Column("kind", String(16), nullable=False),
    # pending, capturing (its capture is crossing regions), captured, voided, expired
    Column("status", String(16), nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("owner_id", String(64), nullable=False),
    Column("payee_id", String(64), nullable=False),
    Column("payee_username", String(64), nullable=False),
    Column("payee_region", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("captured", BigInteger, nullable=False),
    Column("memo", String(140), nullable=True),
    Column("transfer_id", String(36), nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_holds_status_expires", "status", "expires_at"),
)

# Cross-region transfers this region still has to settle with the payee's region.
outbox = Table(
    "outbox",
    metadata,
    Column("transfer_id", String(36), primary_key=True),
    Column("peer_region", String(32), nullable=False),
    # pending, done
    Column("state", String(8), nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_outbox_state_next", "state", "next_attempt_at"),
)

# The payee side's decision on each cross-region transfer addressed to it: credited,
# or refused (a refusal is final, so a late credit for the same transfer stays refused).
inbound = Table(
    "inbound_transfers",
    metadata,
    Column("transfer_id", String(36), primary_key=True),
    Column("origin_region", String(32), nullable=False),
    Column("outcome", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payee_id", String(64), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("entry_id", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_inbound_origin", "origin_region", "transfer_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # The caller the key belongs to (a user id): keys of different callers never meet.
    Column("scope", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    # Digest of the operation and its validated body.
    Column("fingerprint", String(64), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


@functools.cache
def insert_ignoring_conflicts(dialect: str, table: Table, *returning: Column[Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING [RETURNING ...]`` for ``dialect`` (built once)."""
    construct: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Insert = construct(table).on_conflict_do_nothing()
    return statement.returning(*returning) if returning else statement
