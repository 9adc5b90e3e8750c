"""the claims request parameter: kept by codes and tokens, consented claims

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 07:50:00

OIDC Core §5.5: ``authorization_codes.claims_request`` and ``tokens.claims_request`` keep the
claims request parameter in its normal form (oauth.claims_request), so the ID token and
UserInfo add the individually requested claims, also after refresh.
``consents.claims``: the claims the user consented to one by one, beyond the scopes'.
NULL everywhere keeps today's behaviour (no individual claims).
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(sa.Column("claims_request", sa.Text(), nullable=True))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("claims_request", sa.Text(), nullable=True))
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("claims", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("claims")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("claims_request")
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("claims_request")
