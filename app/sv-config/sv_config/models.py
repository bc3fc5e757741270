"""sv-config's tables: namespaces, their draft items, immutable releases, gray, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from edgelib.db import UTCDateTime as UTCDateTime
from edgelib.db import utcnow as utcnow


class Base(DeclarativeBase):
    """Metadata of sv-config's own tables."""


class Namespace(Base):
    """One namespace of one environment and cluster; ``current_release_id`` is what runs."""

    __tablename__ = "namespaces"
    __table_args__ = (UniqueConstraint("name", "environment", "cluster"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str] = mapped_column(String(32), default="default")
    app: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(500), default="")
    json_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # No foreign key: releases point at namespaces, and a cycle buys nothing here.
    current_release_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Item(Base):
    """One key of a namespace's draft (its working copy)."""

    __tablename__ = "items"

    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(500), default="")
    updated_by: Mapped[str] = mapped_column(String(128), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Release(Base):
    """An immutable, numbered snapshot of a namespace: ``content`` maps key to type and value."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("namespace_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(String(500), default="")
    author_id: Mapped[str] = mapped_column(String(64), default="")
    author: Mapped[str] = mapped_column(String(128), default="")
    #: The release a rollback restored, or the gray release a promotion made live.
    source_number: Mapped[int | None] = mapped_column(Integer)
    #: Who a gray release was for (kind ``gray`` only).
    targets: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GrayRelease(Base):
    """The gray release running on chosen instances of a namespace (at most one)."""

    __tablename__ = "gray_releases"

    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    targets: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_by: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """One change, who made it and when; written in the same transaction as the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    environment: Mapped[str] = mapped_column(String(16))
    cluster: Mapped[str] = mapped_column(String(32))
    namespace: Mapped[str] = mapped_column(String(128))
    namespace_id: Mapped[int | None] = mapped_column(Integer)
    release_number: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
