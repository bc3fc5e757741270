"""Draft items, immutable releases, gray releases and the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as batch:
        batch.add_column(sa.Column("app", sa.String(64), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("description", sa.String(500), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("json_schema", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("current_release_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(128), nullable=False, server_default=""))
        batch.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
    op.create_table(
        "items",
        sa.Column(
            "namespace_id",
            sa.Integer(),
            sa.ForeignKey("namespaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("comment", sa.String(500), nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "namespace_id",
            sa.Integer(),
            sa.ForeignKey("namespaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False, server_default=""),
        sa.Column("author_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("author", sa.String(128), nullable=False, server_default=""),
        sa.Column("source_number", sa.Integer(), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("namespace_id", "number"),
    )
    op.create_table(
        "gray_releases",
        sa.Column(
            "namespace_id",
            sa.Integer(),
            sa.ForeignKey("namespaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "release_id",
            sa.Integer(),
            sa.ForeignKey("releases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("started_by", sa.String(128), nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("cluster", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=True),
        sa.Column("release_number", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_namespace", "audit_log", ["namespace", "environment", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_namespace", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("gray_releases")
    op.drop_table("releases")
    op.drop_table("items")
    with op.batch_alter_table("namespaces") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("created_by")
        batch.drop_column("current_release_id")
        batch.drop_column("json_schema")
        batch.drop_column("description")
        batch.drop_column("app")
