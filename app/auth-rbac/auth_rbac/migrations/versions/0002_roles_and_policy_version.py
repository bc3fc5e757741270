"""Roles, the policy version counter, and the seed policy: built-in roles admin and user.

The admin role is granted every permission the platform's routes declare today; a
later permission gets its grant in the migration that introduces it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DOMAIN = "default"
ADMIN_PERMISSIONS = [
    ("users", "list"),
    ("wallet", "topup"),
    ("wallet", "audit"),
    ("logs", "read"),
    ("regions", "write"),
    ("keys", "rotate"),
    ("rbac", "admin"),
    ("config", "edit"),
    ("config", "publish"),
]
BUILTIN_ROLES = [
    ("admin", "Operators: holds every admin permission of the platform."),
    ("user", "Every registered user; assigned on registration."),
]


def upgrade() -> None:
    role = op.create_table(
        "rbac_role",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("domain", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.String(512), nullable=False, server_default=""),
        sa.Column("builtin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("domain", "name", name="uq_rbac_role_domain_name"),
    )
    version = op.create_table(
        "rbac_policy_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_casbin_rule_ptype_v1", "casbin_rule", ["ptype", "v1"])
    now = datetime.now(UTC)
    op.bulk_insert(
        role,
        [
            {
                "domain": DOMAIN,
                "name": name,
                "description": text,
                "builtin": True,
                "created_at": now,
            }
            for name, text in BUILTIN_ROLES
        ],
    )
    rule = sa.table(
        "casbin_rule",
        sa.column("ptype", sa.String),
        sa.column("v0", sa.String),
        sa.column("v1", sa.String),
        sa.column("v2", sa.String),
        sa.column("v3", sa.String),
    )
    op.bulk_insert(
        rule,
        [
            {"ptype": "p", "v0": "admin", "v1": DOMAIN, "v2": obj, "v3": act}
            for obj, act in ADMIN_PERMISSIONS
        ],
    )
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    rule = sa.table(
        "casbin_rule",
        sa.column("ptype", sa.String),
        sa.column("v0", sa.String),
        sa.column("v1", sa.String),
    )
    op.execute(rule.delete().where(rule.c.ptype == "p", rule.c.v0 == "admin", rule.c.v1 == DOMAIN))
    op.drop_index("ix_casbin_rule_ptype_v1", table_name="casbin_rule")
    op.drop_table("rbac_policy_version")
    op.drop_table("rbac_role")
