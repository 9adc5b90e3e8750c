"""an index for the nonce check of authorization requests

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:30:00

OIDC Core §15.5.2: a nonce a client already used in a stored code is a replay. Authlib's
check runs twice per authorization request and read every stored code of the client
(purged a day after they expire, PURGE_RETENTION). A hash index on PostgreSQL (a nonce has
no length limit, and B-tree entries over ~2.7 kB are refused); a B-tree on SQLite.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_authorization_codes_nonce",
        "authorization_codes",
        ["nonce"],
        postgresql_using="hash",
    )


def downgrade() -> None:
    op.drop_index("ix_authorization_codes_nonce", table_name="authorization_codes")
