"""The sign-in's statements on the session's connection (``db.Statement``): what they
write is what the ORM would have written, they belong to the caller's transaction, and
their errors are SQLAlchemy's. Each test runs on SQLite and, with IDP_TEST_DATABASE_URL, on
PostgreSQL (psycopg's prepared statements there).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from idp import audit, db, mail
from idp.auth import session as sessions
from idp.models import AuditEvent, KnownDevice, MailMessage, User, UserSession, utcnow
from idp.models.mail import PENDING

AT = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)
INSERT_DEVICE = db.Statement(
    insert(KnownDevice).values(
        user_id=bindparam("user_id"),
        token_hash=bindparam("token_hash"),
        description=bindparam("description"),
        first_seen_at=bindparam("at"),
        last_seen_at=bindparam("at"),
    )
)


def count(model) -> int:
    return db.session().scalar(select(func.count()).select_from(model))


def test_values_read_back_as_the_orm_reads_them(app):
    # JSON of every shape (object, nested list, empty, with non-ASCII text), None, a
    # timezone-aware timestamp to the microsecond, text with quotes and percent signs.
    details = {"amr": ["pwd", "otp"], "nested": {"n": 1, "ok": True}, "name": "Zoë 100% 'x'"}
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        audit.record("test.event", actor="a%s", target=None, **details)
        db.session().commit()
        (row,) = db.session().scalars(select(AuditEvent).where(AuditEvent.event == "test.event"))
        assert (row.actor, row.target, row.ip) == ("a%s", None, "192.0.2.7")
        assert row.details == details
        assert row.at.tzinfo is not None and abs(time.time() - row.at.timestamp()) < 60


def test_a_statements_own_values_are_written_and_returning_gives_the_id(app):
    # The statement holds the status, attempts, subject and text itself; only the address
    # is the caller's.
    statement = db.Statement(
        insert(MailMessage)
        .values(to_address=bindparam("to"), subject="Hi", message="m", status="sent", attempts=1)
        .returning(MailMessage.id)
    )
    with app.test_request_context("/"):
        queued = statement.execute({"to": "bob@example.com"}).fetchone()[0]
        db.session().commit()
        row = db.session().get(MailMessage, queued)
        assert (row.status, row.attempts, row.to_address) == ("sent", 1, "bob@example.com")


def test_the_columns_a_statement_leaves_out_get_the_models_defaults(app, user, monkeypatch):
    # mail.QUEUE names only the address, subject and text: the row is pending, with no
    # attempt yet, and due from its creation on, as an ORM object of the model would be.
    monkeypatch.setitem(app.config, "MAIL_WORKER", False)  # no sender thread claims it first
    with app.test_request_context("/"):
        started = utcnow()
        queued = mail.send("bob@example.com", "Hello", "notice", name="Bob", text="Hi")
        db.session().commit()
        row = db.session().get(MailMessage, queued)
        assert (row.status, row.attempts, row.to_address) == (PENDING, 0, "bob@example.com")
        assert started <= row.created_at <= row.next_attempt_at <= utcnow()
        assert "Subject: Hello" in row.message
        # An UPDATE gets the columns' onupdate (users.updated_at), unless the caller gives
        # a value for them, as SQLAlchemy's execution does.
        user = db.session().merge(user)
        user.updated_at = datetime(2000, 1, 1, tzinfo=UTC)  # long before ``started``
        db.session().commit()
        login = db.Statement(
            update(User).where(User.id == bindparam("uid")).values(last_login_at=bindparam("at"))
        )
        login.execute({"uid": user.id, "at": AT})
        db.session().commit()
        db.session().refresh(user)
        assert user.last_login_at == AT and user.updated_at >= started
        login.execute({"uid": user.id, "at": AT, "updated_at": AT})
        db.session().commit()
        db.session().refresh(user)
        assert user.updated_at == AT


def test_a_rollback_undoes_them_and_a_commit_keeps_them(app, user):
    # They are part of the caller's transaction, as the ORM objects they replace were.
    with app.test_request_context("/"):
        before = count(AuditEvent)
        audit.record("test.rolled_back", actor=user.sub)
        INSERT_DEVICE.execute(
            {"user_id": user.id, "token_hash": "h1", "description": "Firefox", "at": AT}
        )
        db.session().rollback()
        assert count(AuditEvent) == before and count(KnownDevice) == 0
        INSERT_DEVICE.execute(
            {"user_id": user.id, "token_hash": "h2", "description": "Firefox", "at": AT}
        )
        db.session().commit()
        (device,) = db.session().scalars(select(KnownDevice))
        assert device.token_hash == "h2" and device.first_seen_at == AT


def test_an_error_is_sqlalchemys_and_the_session_goes_on_after_a_rollback(app, user):
    values = {"user_id": user.id, "token_hash": "same", "description": "Firefox", "at": AT}
    with app.test_request_context("/"):
        INSERT_DEVICE.execute(values)
        with pytest.raises(IntegrityError):  # (user_id, token_hash) is unique
            INSERT_DEVICE.execute(values)
        db.session().rollback()
        INSERT_DEVICE.execute(values)
        db.session().commit()
        assert count(KnownDevice) == 1


def test_the_new_session_row_is_a_loaded_row_whose_later_changes_are_saved(app, user):
    # session.start INSERTs the row itself and hands the ORM a persistent object: the
    # request's later changes to it (a step-up's new amr) must still reach the database.
    headers = {"User-Agent": "Firefox/128.0"}
    with app.test_request_context("/login", headers=headers):
        row = sessions.start(db.session().merge(user), ["pwd"], [{"kind": "pwd", "at": 1}])
        s = db.session()
        assert row in s and row not in s.new and row not in s.dirty and row.id
        assert sessions.current() is row
        row.amr = ["pwd", "otp", "mfa"]
        s.commit()
        sid = row.sid
    with app.app_context():
        stored = db.session().scalar(select(UserSession).where(UserSession.sid == sid))
        assert stored.amr == ["pwd", "otp", "mfa"] and stored.factors == [{"kind": "pwd", "at": 1}]
        assert stored.user_agent == "Firefox/128.0" and stored.ended_at is None
        assert stored.created_at == stored.last_seen_at


def test_a_context_sensitive_default_reads_the_statements_parameters(app):
    # SQLAlchemy's "context-sensitive default functions": a default of one argument gets
    # the execution context and reads the statement's parameters from it; db.Statement
    # gives it the same, in an INSERT's default and an UPDATE's onupdate.
    from sqlalchemy import Column, Integer, MetaData, String, Table

    def slug(context):
        return context.get_current_parameters()["name"].lower().replace(" ", "-")

    def edits(context):
        assert context.current_column.name == "note"
        return f"renamed to {context.get_current_parameters()['name']}"

    metadata = MetaData()
    table = Table(
        "test_context_defaults", metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(40), nullable=False),
        Column("slug", String(40), default=slug),
        Column("note", String(80), default="new", onupdate=edits),
    )  # fmt: skip
    add = db.Statement(insert(table).values(name=bindparam("name")).returning(table.c.id))
    rename = db.Statement(
        update(table).where(table.c.id == bindparam("row")).values(name=bindparam("name"))
    )
    engine = db.engine(app)
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            first = add.run(connection, {"name": "Ada Lovelace"}).fetchone()[0]
            given = add.run(connection, {"name": "Grace", "slug": "gh"}).fetchone()[0]
            rename.run(connection, {"row": first, "name": "Ada King"})
            rows = connection.execute(select(table).order_by(table.c.id)).all()
        assert [tuple(row)[1:] for row in rows] == [
            ("Ada King", "ada-lovelace", "renamed to Ada King"),  # the INSERT's slug kept
            ("Grace", "gh", "new"),  # the caller's value wins; a plain default as it is
        ]
        assert [row.id for row in rows] == [first, given]
    finally:
        metadata.drop_all(engine)
