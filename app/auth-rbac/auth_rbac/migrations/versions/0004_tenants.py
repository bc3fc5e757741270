"""Tenants and their members; the admin role administers tenants and apps.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DOMAIN = "default"
ADDED = [("tenants", "admin"), ("apps", "admin")]

rule = sa.table(
    "casbin_rule",
    sa.column("ptype", sa.String),
    sa.column("v0", sa.String),
    sa.column("v1", sa.String),
    sa.column("v2", sa.String),
    sa.column("v3", sa.String),
)
version = sa.table(
    "rbac_policy_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer)
)


def upgrade() -> None:
    op.create_table(
        "rbac_tenant",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rbac_tenant_member",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "user_id"),
    )
    op.create_index("ix_rbac_tenant_member_user", "rbac_tenant_member", ["user_id"])
    op.bulk_insert(
        rule, [{"ptype": "p", "v0": "admin", "v1": DOMAIN, "v2": o, "v3": a} for o, a in ADDED]
    )
    op.execute(version.update().where(version.c.id == 1).values(version=version.c.version + 1))


def downgrade() -> None:
    for obj, act in ADDED:
        op.execute(
            rule.delete().where(
                rule.c.ptype == "p",
                rule.c.v0 == "admin",
                rule.c.v1 == DOMAIN,
                rule.c.v2 == obj,
                rule.c.v3 == act,
            )
        )
    op.drop_index("ix_rbac_tenant_member_user", table_name="rbac_tenant_member")
    op.drop_table("rbac_tenant_member")
    op.drop_table("rbac_tenant")
