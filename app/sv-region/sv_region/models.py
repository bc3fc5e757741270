"""sv-region's tables: regions, plus the declarative base every domain's models share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from edgelib.db import UTCDateTime as UTCDateTime
from edgelib.db import utcnow as utcnow


class Base(DeclarativeBase):
    """Metadata of sv-region's own tables."""


class Region(Base):
    __tablename__ = "regions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Service name -> instance base URLs, when discovery is "static".
    endpoints: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: "static", or where instances are found ("k8s:<namespace>", "etcd:<prefix>").
    discovery: Mapped[str] = mapped_column(String(128), default="static")
    #: Share of new users the weighted default rule sends here.
    weight: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
