"""The admin roles read traffic statistics: the platform's in ``default``, each tenant's in it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DOMAIN = "default"
OBJ, ACT = "stats", "read"

rule = sa.table(
    "casbin_rule",
    sa.column("ptype", sa.String),
    sa.column("v0", sa.String),
    sa.column("v1", sa.String),
    sa.column("v2", sa.String),
    sa.column("v3", sa.String),
)
tenant = sa.table("rbac_tenant", sa.column("id", sa.String))
version = sa.table(
    "rbac_policy_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer)
)


def upgrade() -> None:
    tenants = [row[0] for row in op.get_bind().execute(sa.select(tenant.c.id))]
    op.bulk_insert(
        rule,
        [
            {"ptype": "p", "v0": "admin", "v1": dom, "v2": OBJ, "v3": ACT}
            for dom in [DOMAIN, *tenants]
        ],
    )
    op.execute(version.update().where(version.c.id == 1).values(version=version.c.version + 1))


def downgrade() -> None:
    op.execute(
        rule.delete().where(
            rule.c.ptype == "p", rule.c.v0 == "admin", rule.c.v2 == OBJ, rule.c.v3 == ACT
        )
    )
