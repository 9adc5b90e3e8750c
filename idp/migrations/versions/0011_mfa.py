"""multi-factor authentication

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:35:00

New tables ``totp_credentials`` (RFC 6238 secret, encrypted, and the last accepted time
step) and ``recovery_codes`` (hashed, single-use). MFA policy flags on users, groups and
clients; the factors a session used; the acr a code or token was issued with.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "totp_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("last_used_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_totp_credentials_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_totp_credentials")),
        sa.UniqueConstraint("user_id", name=op.f("uq_totp_credentials_user_id")),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    # Plain ADD COLUMN (SQLite has it): a batch copy of users would lose its expression
    # indexes. DROP COLUMN needs SQLite 3.35.
    false = sa.false()
    op.add_column(
        "users", sa.Column("mfa_required", sa.Boolean(), nullable=False, server_default=false)
    )
    op.add_column(
        "groups", sa.Column("mfa_required", sa.Boolean(), nullable=False, server_default=false)
    )
    op.add_column(
        "clients", sa.Column("require_mfa", sa.Boolean(), nullable=False, server_default=false)
    )
    op.add_column("user_sessions", sa.Column("factors", sa.JSON(), nullable=True))
    op.add_column("authorization_codes", sa.Column("acr", sa.String(length=64), nullable=True))
    op.add_column("tokens", sa.Column("acr", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("tokens", "acr")
    op.drop_column("authorization_codes", "acr")
    op.drop_column("user_sessions", "factors")
    op.drop_column("clients", "require_mfa")
    op.drop_column("groups", "mfa_required")
    op.drop_column("users", "mfa_required")
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("totp_credentials")
