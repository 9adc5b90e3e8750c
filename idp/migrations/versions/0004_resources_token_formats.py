"""resources (RFC 8707), JWT access tokens (RFC 9068), token exchange policy (RFC 8693)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00

New tables ``resources`` (with the client its server introspects as) and ``resource_clients``
(the clients that may request each resource); new nullable columns only, so SQLite adds
them with ALTER TABLE and no table is recreated (audit_events is not touched):

* ``clients.access_token_format``, ``clients.token_exchange_policy``;
* ``authorization_codes.resources``;
* ``tokens.jti`` (unique index), ``tokens.audience``, ``tokens.resources``, ``tokens.act``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=512), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("token_format", sa.String(length=16), nullable=True),
        sa.Column("access_token_lifetime", sa.Integer(), nullable=True),
        sa.Column("introspection_client_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["introspection_client_id"],
            ["clients.client_id"],
            name=op.f("fk_resources_introspection_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint("identifier", name=op.f("uq_resources_identifier")),
    )
    op.create_table(
        "resource_clients",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_resource_clients_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_resource_clients_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("resource_id", "client_id", name=op.f("pk_resource_clients")),
    )
    op.create_index(
        op.f("ix_resource_clients_client_id"), "resource_clients", ["client_id"], unique=False
    )
    op.add_column("clients", sa.Column("access_token_format", sa.String(length=16)))
    op.add_column("clients", sa.Column("token_exchange_policy", sa.JSON()))
    op.add_column("authorization_codes", sa.Column("resources", sa.JSON()))
    op.add_column("tokens", sa.Column("jti", sa.String(length=64)))
    op.add_column("tokens", sa.Column("audience", sa.JSON()))
    op.add_column("tokens", sa.Column("resources", sa.JSON()))
    op.add_column("tokens", sa.Column("act", sa.JSON()))
    op.create_index(op.f("ix_tokens_jti"), "tokens", ["jti"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_tokens_jti"), table_name="tokens")
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_column("act")
        batch_op.drop_column("resources")
        batch_op.drop_column("audience")
        batch_op.drop_column("jti")
    with op.batch_alter_table("authorization_codes") as batch_op:
        batch_op.drop_column("resources")
    with op.batch_alter_table("clients") as batch_op:
        batch_op.drop_column("token_exchange_policy")
        batch_op.drop_column("access_token_format")
    op.drop_index(op.f("ix_resource_clients_client_id"), table_name="resource_clients")
    op.drop_table("resource_clients")
    op.drop_table("resources")
