"""sv-notice's tables (SQLAlchemy Core); the migrations create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both PostgreSQL and SQLite (which stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


metadata = MetaData()

notices = Table(
    "notices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("category", String(64), nullable=False),
    Column("title", String(255), nullable=False),
    Column("body", Text(), nullable=False),
    Column("read_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("data", JSON(), nullable=False),
    Column("dedup_key", String(200), nullable=True, unique=True),
    Column("in_inbox", Boolean(), nullable=False),
    Column("source", String(64), nullable=False),
)

categories = Table(
    "categories",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("critical", Boolean(), nullable=False),
    Column("channels", JSON(), nullable=False),
    Column("description", String(255), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

templates = Table(
    "templates",
    metadata,
    Column("category", String(64), ForeignKey("categories.name"), nullable=False),
    Column("locale", String(16), nullable=False),
    Column("title", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("variables", JSON(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("category", "locale"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("email", String(320), nullable=True),
    Column("locale", String(16), nullable=True),
    Column("webhook_url", String(2048), nullable=True),
    Column("webhook_secret", String(128), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)

preferences = Table(
    "preferences",
    metadata,
    Column("user_id", String(36), nullable=False),
    Column("category", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    PrimaryKeyConstraint("user_id", "category", "channel"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("notice_id", String(36), ForeignKey("notices.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("locked_by", String(128), nullable=True),
    Column("locked_until", UtcDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("failed_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("notice_id", "channel"),
)


def upsert(
    dialect: str, table: Table, values: dict[str, Any], keys: list[str], update: list[str]
) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET update`` on PostgreSQL and SQLite."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(values)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=keys)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )
