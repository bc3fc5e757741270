"""auth-jwt's tables: signing keys, sessions, refresh tokens, revocations, apps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from edgelib.db import UTCDateTime as UTCDateTime
from edgelib.db import utcnow as utcnow


class Base(DeclarativeBase):
    """Metadata of auth-jwt's own tables."""


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    #: PKCS#8 PEM, encrypted with the key passphrase.
    private_pem: Mapped[str] = mapped_column(Text())
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: When it stopped signing; it stays published until ``publish_until``.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthSession(Base):
    """One login: a refresh-token family. At most one live session per user and client type."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    username: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(32))
    client_type: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoke_reason: Mapped[str | None] = mapped_column(String(32))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))
    #: The active tenant chosen at login: the Casbin domain of the session's tokens.
    tenant: Mapped[str] = mapped_column(String(128), default="default")


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Set when the token was exchanged; a second use is a replay.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Revocation(Base):
    """A session that ended, kept until every access token it could have issued expired."""

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class BootstrapAccount(Base):
    """An account the bootstrap made itself, remembered by id: the only one it grants a role.

    The row is written before sv-user is asked to create the account, with the id that
    account will have, so a crash in between is retried with the same id and never
    leaves the bootstrap trusting whoever holds the name.
    """

    __tablename__ = "bootstrap_accounts"

    #: What the account is for ("admin").
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set once sv-user confirmed it stores the account under ``user_id``.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class App(Base):
    """A machine client of a tenant: an OAuth2 client using the client-credentials grant."""

    __tablename__ = "apps"

    client_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)
    #: The ``sid`` of the app's access tokens; revoked and replaced when it is disabled.
    token_sid: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppSecret(Base):
    """One secret of an app. Only its SHA-256 is stored; the secret is shown once."""

    __tablename__ = "app_secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("apps.client_id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: None while current; set by a rotation to the end of its overlap window.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
