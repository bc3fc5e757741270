"""The tenant tables (migration 0004), in the policy's metadata."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, PrimaryKeyConstraint, String, Table

from auth_rbac.policy.tables import metadata

#: A tenant is a Casbin domain: its id is the ``dom`` of its rules and roles.
rbac_tenant = Table(
    "rbac_tenant",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Who may act in a tenant: only members can log in with it as their active tenant.
rbac_tenant_member = Table(
    "rbac_tenant_member",
    metadata,
    Column("tenant", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant", "user_id"),
)
