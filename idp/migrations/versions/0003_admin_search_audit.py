"""admin: user search indexes, audit actor/target indexes, append-only audit_events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00

The admin user list searches by case-insensitive prefix of username, email and names, and
pages with keyset pagination on ``username`` (already unique, so already indexed). The
prefix search compares ``lower(column)`` with a range, which an index on that expression
serves on both databases; on PostgreSQL the index uses the "C" collation so that the byte
range the query asks for is the index order whatever the database collation is.

The audit log is append-only: triggers refuse UPDATE and DELETE on ``audit_events``.
(A later batch_alter_table that recreates audit_events on SQLite must create them again.)
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SEARCH_COLUMNS = ("username", "email", "name", "given_name", "family_name")

PG_APPEND_ONLY = (
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
    END;
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for column in SEARCH_COLUMNS:
        expression = f'lower({column}) COLLATE "C"' if postgres else f"lower({column})"
        op.execute(f"CREATE INDEX ix_users_lower_{column} ON users ({expression})")
    op.create_index("ix_audit_events_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_events_target", "audit_events", ["target"])
    if postgres:
        for statement in PG_APPEND_ONLY:
            op.execute(statement)
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{action.lower()} BEFORE {action} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_index("ix_audit_events_actor", table_name="audit_events")
    for column in SEARCH_COLUMNS:
        op.drop_index(f"ix_users_lower_{column}", table_name="users")
