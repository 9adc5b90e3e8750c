"""DPoP key bindings

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 16:10:00

RFC 9449: ``tokens.jkt``, the thumbprint of the DPoP key an access token (and a public
client's refresh token) is bound to; ``authorization_codes.dpop_jkt``, the key an
authorization request bound its code to (§10). Proof jti values go to the existing
``jwt_replay`` table under their own key namespace; ``dpop_bound_access_tokens`` is client
metadata (``clients.client_metadata``), like ``require_pushed_authorization_requests``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("jkt", sa.String(length=43), nullable=True))
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=43), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("jkt")
