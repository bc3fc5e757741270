"""Any user's sessions (the console's Users page): the ``admin`` role reads and ends
them (``sessions:read``, ``sessions:revoke``); the read-only ``operator`` role (0007)
reads them, and reads each region's wallet audit (``wallet:audit``, a read).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DOMAIN = "default"
GRANTS = [
    ("admin", "sessions", "read"),
    ("admin", "sessions", "revoke"),
    ("operator", "sessions", "read"),
    ("operator", "wallet", "audit"),
]

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
        rule,
        [{"ptype": "p", "v0": sub, "v1": DOMAIN, "v2": obj, "v3": act} for sub, obj, act in GRANTS],
    )
    op.execute(version.update().where(version.c.id == 1).values(version=version.c.version + 1))


def downgrade() -> None:
    for sub, obj, act in GRANTS:
        op.execute(
            rule.delete().where(
                rule.c.ptype == "p",
                rule.c.v0 == sub,
                rule.c.v1 == DOMAIN,
                rule.c.v2 == obj,
                rule.c.v3 == act,
            )
        )
