"""pairwise subjects and signed UserInfo per client

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 16:20:00

Three client columns (OIDC Registration 1.0 §2): ``subject_type`` (public or pairwise,
OIDC Core §8), ``sector_identifier_uri`` (§8.1) and ``userinfo_signed_response_alg``
(OIDC Core §5.3.2). NULL keeps today's behaviour: public subjects, JSON UserInfo.
New table ``pairwise_subjects``: the pairwise subs put in ID tokens, to map hints back.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("subject_type", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sector_identifier_uri", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("userinfo_signed_response_alg", sa.String(length=16), nullable=True)
        )
    op.create_table(
        "pairwise_subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sector", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_pairwise_subjects_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairwise_subjects")),
        sa.UniqueConstraint("sector", "subject", name=op.f("uq_pairwise_subjects_sector")),
    )
    op.create_index(op.f("ix_pairwise_subjects_user_id"), "pairwise_subjects", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pairwise_subjects_user_id"), table_name="pairwise_subjects")
    op.drop_table("pairwise_subjects")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("userinfo_signed_response_alg")
        batch.drop_column("sector_identifier_uri")
        batch.drop_column("subject_type")
