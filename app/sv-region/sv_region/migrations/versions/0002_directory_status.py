"""Directory entries are pending until their account exists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_directory") as batch:
        # Rows from before this revision are existing accounts: active.
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="active")
        )
        batch.create_index("ix_user_directory_region", ["region"])


def downgrade() -> None:
    with op.batch_alter_table("user_directory") as batch:
        batch.drop_index("ix_user_directory_region")
        batch.drop_column("status")
