"""The quota tables (migration 0006), in the policy's metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from auth_rbac.policy.tables import metadata

#: One row per app, tenant, route or service with limits; NULL leaves a limit out.
rbac_quota = Table(
    "rbac_quota",
    metadata,
    Column("kind", String(16), nullable=False),
    #: The tenant the quota belongs to (an app's tenant; ``default`` for routes, services).
    Column("tenant", String(128), nullable=False),
    #: The app's client id, the tenant's id, the route's name or the service's name.
    Column("target", String(256), nullable=False),
    Column("qps", Integer),
    Column("qpd", BigInteger),
    Column("concurrency", Integer),
    Column("burst", Integer, nullable=False, default=1),
    Column("timezone", String(64)),
    Column("on_redis_down", String(16), nullable=False, default="local"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
    PrimaryKeyConstraint("kind", "tenant", "target"),
)

#: One row: bumped in the same transaction as every quota change.
rbac_quota_version = Table(
    "rbac_quota_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
