"""outgoing mail queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00

New table ``mail_messages``: each rendered message waits here until the SMTP server has
accepted it (``status`` pending -> sent | failed). Self-contained: it touches no other table,
so it can be re-chained after another 0006 at merge time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
    )
    # The sender's one query: pending messages by due time.
    op.create_index(op.f("ix_mail_messages_status"), "mail_messages", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mail_messages_status"), table_name="mail_messages")
    op.drop_table("mail_messages")
