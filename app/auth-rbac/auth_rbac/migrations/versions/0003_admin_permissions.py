"""The admin role also holds notices:admin and regions:read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DOMAIN = "default"
ADDED = [("notices", "admin"), ("regions", "read")]

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
    op.bulk_insert(
        rule, [{"ptype": "p", "v0": "admin", "v1": DOMAIN, "v2": o, "v3": a} for o, a in ADDED]
    )
    # Instances and gateways follow the version row: bump it so they reload.
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
