"""The admin console's permissions: ``console:read`` and ``console:admin`` for the
``admin`` role, and a built-in read-only ``operator`` role in ``default``.

``operator`` holds ``console:read`` and the read permissions its pages use
(``stats:read``, ``regions:read``, ``logs:read``); a change in the console needs
``console:admin`` (and the platform's own permission for the change itself).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DOMAIN = "default"
ADMIN = [("console", "read"), ("console", "admin")]
OPERATOR = [("console", "read"), ("stats", "read"), ("regions", "read"), ("logs", "read")]

rule = sa.table(
    "casbin_rule",
    sa.column("ptype", sa.String),
    sa.column("v0", sa.String),
    sa.column("v1", sa.String),
    sa.column("v2", sa.String),
    sa.column("v3", sa.String),
)
role = sa.table(
    "rbac_role",
    sa.column("domain", sa.String),
    sa.column("name", sa.String),
    sa.column("description", sa.String),
    sa.column("builtin", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
version = sa.table(
    "rbac_policy_version", sa.column("id", sa.Integer), sa.column("version", sa.Integer)
)


def upgrade() -> None:
    op.bulk_insert(
        role,
        [
            {
                "domain": DOMAIN,
                "name": "operator",
                "description": "Reads the platform in the admin console; changes nothing",
                "builtin": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.bulk_insert(
        rule,
        [
            *({"ptype": "p", "v0": "admin", "v1": DOMAIN, "v2": o, "v3": a} for o, a in ADMIN),
            *(
                {"ptype": "p", "v0": "operator", "v1": DOMAIN, "v2": o, "v3": a}
                for o, a in OPERATOR
            ),
        ],
    )
    op.execute(version.update().where(version.c.id == 1).values(version=version.c.version + 1))


def downgrade() -> None:
    op.execute(rule.delete().where(rule.c.ptype == "p", rule.c.v0 == "operator"))
    op.execute(
        rule.delete().where(
            rule.c.ptype == "p", rule.c.v0 == "admin", rule.c.v1 == DOMAIN, rule.c.v2 == "console"
        )
    )
    op.execute(role.delete().where(role.c.domain == DOMAIN, role.c.name == "operator"))
