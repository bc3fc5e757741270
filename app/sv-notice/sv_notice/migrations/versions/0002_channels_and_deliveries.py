"""Categories, templates, contacts, preferences and per-channel deliveries; seed categories.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ALL_CHANNELS = ["in_app", "realtime", "email", "webhook"]


def _string(required: bool = True) -> dict[str, object]:
    return {"type": "string", "required": required}


SEED_CATEGORIES = [
    {
        "name": "general",
        "critical": False,
        "channels": ALL_CHANNELS,
        "description": "Announcements an administrator writes by hand.",
    },
    {
        "name": "wallet.transfer_received",
        "critical": False,
        "channels": ALL_CHANNELS,
        "description": "Money arrived in the user's wallet (event from sv-money).",
    },
    {
        "name": "security.new_sign_in",
        "critical": True,
        "channels": ALL_CHANNELS,
        "description": "The account signed in on another client type (event from auth-jwt).",
    },
]

TRANSFER_VARIABLES = {
    "amount": _string(),
    "currency": _string(),
    "from_username": _string(),
    "transfer_id": _string(),
    "note": _string(required=False),
}
SIGN_IN_VARIABLES = {
    "client_type": _string(),
    "signed_in_at": _string(),
    "ip": _string(required=False),
}

SEED_TEMPLATES = [
    {
        "category": "general",
        "locale": "en",
        "title": "{{ title }}",
        "body": "{{ body }}",
        "variables": {"title": _string(), "body": _string()},
    },
    {
        "category": "wallet.transfer_received",
        "locale": "en",
        "title": "You received {{ amount }} {{ currency }}",
        "body": (
            "{{ from_username }} sent you {{ amount }} {{ currency }}."
            "{% if note %} Note: {{ note }}{% endif %}"
        ),
        "variables": TRANSFER_VARIABLES,
    },
    {
        "category": "wallet.transfer_received",
        "locale": "zh",
        "title": "您收到了 {{ amount }} {{ currency }}",
        "body": (
            "{{ from_username }} 向您转账 {{ amount }} {{ currency }}。"
            "{% if note %}备注: {{ note }}{% endif %}"
        ),
        "variables": TRANSFER_VARIABLES,
    },
    {
        "category": "security.new_sign_in",
        "locale": "en",
        "title": "New sign-in on a {{ client_type }} client",
        "body": (
            "Your account signed in on a {{ client_type }} client at {{ signed_in_at }}"
            "{% if ip %} from {{ ip }}{% endif %}. If this was not you, change your password "
            "and end your other sessions."
        ),
        "variables": SIGN_IN_VARIABLES,
    },
]


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("locale", sa.String(16), nullable=False, server_default="en"))
        batch.add_column(sa.Column("data", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("dedup_key", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("in_inbox", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("source", sa.String(64), nullable=False, server_default="admin"))
        batch.create_index("ux_notices_dedup_key", ["dedup_key"], unique=True)
        batch.create_index("ix_notices_user_read", ["user_id", "read_at"])

    categories = op.create_table(
        "categories",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    templates = op.create_table(
        "templates",
        sa.Column("category", sa.String(64), sa.ForeignKey("categories.name"), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("category", "locale"),
    )
    op.create_table(
        "contacts",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("webhook_secret", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "category", "channel"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "notice_id",
            sa.String(36),
            sa.ForeignKey("notices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(128), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("notice_id", "channel", name="uq_deliveries_notice_channel"),
    )
    # The outbox sweep and the status pages read deliveries by status and due time.
    op.create_index("ix_deliveries_status_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_status_updated", "deliveries", ["status", "updated_at", "id"])

    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite holds naive UTC (see models.UtcDateTime)
    op.bulk_insert(categories, [{**c, "updated_at": now} for c in SEED_CATEGORIES])
    op.bulk_insert(templates, [{**t, "version": 1, "updated_at": now} for t in SEED_TEMPLATES])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_updated", table_name="deliveries")
    op.drop_index("ix_deliveries_status_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("preferences")
    op.drop_table("contacts")
    op.drop_table("templates")
    op.drop_table("categories")
    with op.batch_alter_table("notices") as batch:
        batch.drop_index("ix_notices_user_read")
        batch.drop_index("ux_notices_dedup_key")
        batch.drop_column("source")
        batch.drop_column("in_inbox")
        batch.drop_column("dedup_key")
        batch.drop_column("data")
        batch.drop_column("locale")
