"""the user's own data: known devices, deletion requests, new-device notice opt-out

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 15:40:00

New tables ``known_devices`` (hashes of a browser cookie, per user: a sign-in from a new
browser mails the user) and ``deletion_requests`` (a user asks, an admin decides; at most
one pending per user), and the column ``users.new_device_notices`` (default on).
Self-contained: it touches only these, so it can be re-chained at merge time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("new_device_notices", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.create_table(
        "known_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=120), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_known_devices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_devices")),
        sa.UniqueConstraint("user_id", "token_hash", name=op.f("uq_known_devices_user_id")),
    )
    op.create_index(op.f("ix_known_devices_user_id"), "known_devices", ["user_id"])
    op.create_table(
        "deletion_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_deletion_requests_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_requests")),
    )
    op.create_index(op.f("ix_deletion_requests_user_id"), "deletion_requests", ["user_id"])
    op.create_index(
        "uq_deletion_requests_pending",
        "deletion_requests",
        ["user_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("uq_deletion_requests_pending", table_name="deletion_requests")
    op.drop_index(op.f("ix_deletion_requests_user_id"), table_name="deletion_requests")
    op.drop_table("deletion_requests")
    op.drop_index(op.f("ix_known_devices_user_id"), table_name="known_devices")
    op.drop_table("known_devices")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("new_device_notices")
