"""device codes (RFC 8628), pushed authorization requests (RFC 9126), JWT client auth (RFC 7523)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 12:00:00

New tables ``device_codes``, ``pushed_authorization_requests`` and ``jwt_replay`` (the jti of
every accepted client assertion until it expires; ``purge`` deletes it after). One new
nullable column, ``clients.client_secret_encrypted`` (client_secret_jwt keys), added with
ALTER TABLE so SQLite recreates no table (audit_events keeps its triggers).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, server_default="pending"),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auth_time", sa.Integer(), nullable=True),
        sa.Column("amr", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_device_codes_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_device_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_codes")),
        sa.UniqueConstraint("device_code_hash", name=op.f("uq_device_codes_device_code_hash")),
    )
    op.create_index(op.f("ix_device_codes_user_code_hash"), "device_codes", ["user_code_hash"])
    op.create_index(op.f("ix_device_codes_client_id"), "device_codes", ["client_id"])
    op.create_index(op.f("ix_device_codes_expires_at"), "device_codes", ["expires_at"])

    op.create_table(
        "pushed_authorization_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_uri_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_pushed_authorization_requests_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pushed_authorization_requests")),
        sa.UniqueConstraint(
            "request_uri_hash", name=op.f("uq_pushed_authorization_requests_request_uri_hash")
        ),
    )
    op.create_index(
        op.f("ix_pushed_authorization_requests_client_id"),
        "pushed_authorization_requests",
        ["client_id"],
    )
    op.create_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        "pushed_authorization_requests",
        ["expires_at"],
    )

    op.create_table(
        "jwt_replay",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_jwt_replay")),
    )
    op.create_index(op.f("ix_jwt_replay_expires_at"), "jwt_replay", ["expires_at"])

    op.add_column("clients", sa.Column("client_secret_encrypted", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("client_secret_encrypted")
    op.drop_index(op.f("ix_jwt_replay_expires_at"), table_name="jwt_replay")
    op.drop_table("jwt_replay")
    op.drop_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        table_name="pushed_authorization_requests",
    )
    op.drop_index(
        op.f("ix_pushed_authorization_requests_client_id"),
        table_name="pushed_authorization_requests",
    )
    op.drop_table("pushed_authorization_requests")
    op.drop_index(op.f("ix_device_codes_expires_at"), table_name="device_codes")
    op.drop_index(op.f("ix_device_codes_client_id"), table_name="device_codes")
    op.drop_index(op.f("ix_device_codes_user_code_hash"), table_name="device_codes")
    op.drop_table("device_codes")
