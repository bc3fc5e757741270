"""The tables auth-rbac owns (created by its migrations)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table

metadata = MetaData()

#: Casbin's conventional rule table: ``p`` rules use v0..v3, ``g`` rules v0..v2.
casbin_rule = Table(
    "casbin_rule",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ptype", String(255), nullable=False),
    Column("v0", String(255)),
    Column("v1", String(255)),
    Column("v2", String(255)),
    Column("v3", String(255)),
    Column("v4", String(255)),
    Column("v5", String(255)),
)

#: Named roles per domain. Casbin itself has no role entity; this one lets roles be
#: listed, described, protected (built-ins) and exist before holding any permission.
rbac_role = Table(
    "rbac_role",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("domain", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("description", String(512), nullable=False, default=""),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: One row: bumped in the same transaction as every policy change.
rbac_policy_version = Table(
    "rbac_policy_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
