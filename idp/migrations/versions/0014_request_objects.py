"""signed request objects (JAR)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 16:10:00

Two client columns for RFC 9101 (JWT-Secured Authorization Requests):
``request_object_signing_alg`` (OIDC Registration §2: the one JWS algorithm the client signs
request objects with; NULL: any the server lists) and ``require_signed_request_object``
(RFC 9101 §10.5: refuse this client's authorization requests that are not request objects).
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("request_object_signing_alg", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column(
                "require_signed_request_object",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("require_signed_request_object")
        batch.drop_column("request_object_signing_alg")
