"""The ``assignment_rules`` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sv_region.models import Base, UTCDateTime, utcnow

PHONE_PREFIX = "phone_prefix"
NETWORK = "network"


class AssignmentRule(Base):
    """A new user whose phone number or client address matches goes to ``region``."""

    __tablename__ = "assignment_rules"
    __table_args__ = (UniqueConstraint("kind", "match"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    kind: Mapped[str] = mapped_column(String(16))
    match: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(32), ForeignKey("regions.name"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
