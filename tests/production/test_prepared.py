"""The hot paths' statements on psycopg's libpq layer (``db.Prepared``): the values they
read, the statements they run, and the prepared statements they lose.

PostgreSQL only, as the driver path is (``db.driver_path``).
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from idp import audit, db
from idp.auth import login
from idp.auth import session as sessions
from idp.models import (
    AuditEvent,
    AuthorizationCode,
    SessionClient,
    Token,
    User,
    UserSession,
    session_sql,
    token_sql,
    user_sql,
)
from idp.oauth.tokens import secret_hash

from ..conftest import PG_URL
from ..helpers import basic_auth

pg_only = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)")


def test_placeholders_become_numbered_parameters_once_per_name():
    named = db.Prepared("test_named", "SELECT %(a)s, %(b)s::JSON, %(a)s, 'x' LIKE '100%%'")
    assert named.sql == b"SELECT $1, $2::JSON, $1, 'x' LIKE '100%'"
    assert named.names == ("a", "b") and not named.positional
    positional = db.Prepared("test_positional", "INSERT INTO t VALUES (%s, %s)")
    assert positional.sql == b"INSERT INTO t VALUES ($1, $2)" and positional.positional


def test_a_name_is_one_statement():
    # A connection knows a prepared statement by its name only: a second statement under
    # the same name would run the first one's text.
    db.Prepared("test_same", "SELECT 1")
    db.Prepared("test_same", "SELECT 1")  # the same statement again: the same name is fine
    with pytest.raises(ValueError):
        db.Prepared("test_same", "SELECT 2")


@pg_only
def test_a_token_reads_the_same_through_libpq_as_through_a_cursor(app, client, auth, user, factory):
    # Every column type the look-ups read: timestamps with time zone, JSON (amr, audience,
    # resources), booleans, integers, text, and NULLs; both token strings' hashes.
    registered = factory.client()
    auth.login()
    issued = auth.tokens(registered, scope="openid profile email offline_access")
    with app.app_context(), db.autocommit() as conn:
        for name in ("FIND_TOKEN", "FIND_REFRESH"):
            statement = getattr(token_sql, name)
            for token in (issued["access_token"], issued["refresh_token"]):
                params = {"digest": secret_hash(token)}
                by_cursor = conn.execute(statement, params).fetchone()
                by_libpq = db.Prepared(f"test_{name}", statement).one(conn, params)
                assert by_libpq == by_cursor  # None for FIND_REFRESH with the access token
                assert [type(v) for v in by_libpq or ()] == [type(v) for v in by_cursor or ()]
        found = db.Prepared("test_FIND_TOKEN", token_sql.FIND_TOKEN).one(conn, {"digest": "x"})
        assert found is None


@pg_only
def test_the_views_carry_each_column_under_its_name(app, client, auth, user, factory):
    # token_sql.builder generates the code that fills TokenView, RefreshView, CodeView and
    # their UserView from a row by position: each attribute must hold its own column.
    registered = factory.client()
    auth.login()
    code, verifier, _ = auth.get_code(registered, scope="openid profile email offline_access")
    issued = auth.exchange(registered, code, verifier).get_json()
    with app.app_context():
        orm = db.session()
        access_hash = secret_hash(issued["access_token"])
        stored = orm.scalar(select(Token).where(Token.access_token_hash == access_hash))
        code_hash = secret_hash(code)
        stored_code = orm.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
        )
        account = orm.get(User, stored.user_id)
        with db.autocommit() as conn:
            views = [
                token_sql.find_token(conn, secret_hash(issued["access_token"])),
                token_sql.find_refresh(conn, secret_hash(issued["refresh_token"])),
            ]
            code_view = token_sql.find_code(conn, secret_hash(code), registered.client_id)

        def columns(row, names) -> dict:
            return {name: getattr(row, name) for name in names}

        for view in views:
            assert columns(view, token_sql.TOKEN_FIELDS) == columns(stored, token_sql.TOKEN_FIELDS)
        assert columns(code_view, token_sql.CODE_FIELDS) == columns(
            stored_code, token_sql.CODE_FIELDS
        )
        for view in (*views, code_view):
            assert columns(view.user, token_sql.USER_FIELDS) == columns(
                account, token_sql.USER_FIELDS
            )


@pg_only
@pytest.mark.config(KEY_CACHE_SECONDS=3600)  # no session per request: the INSERT autocommitted
def test_a_statement_deallocated_behind_its_back_is_prepared_again(app, client, factory):
    # psycopg sends DEALLOCATE ALL after a ROLLBACK on a connection where it prepared
    # statements (the pool's reset of a connection that a session used), which takes the
    # hot paths' statements with it: the next one prepares again and the request succeeds.
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    secret = basic_auth(registered.client_id, registered.client_secret)
    issued = client.post("/token", data={"grant_type": "client_credentials"}, headers=secret)
    token = issued.get_json()["access_token"]

    def introspect():
        looked_up = client.post("/introspect", data={"token": token}, headers=secret)
        return looked_up.get_json()["active"]  # RFC 7662 §2.2

    def prepared_here() -> set[str]:
        with app.app_context(), db.autocommit() as conn:
            return {r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements")}

    assert introspect() is True
    assert "idp_find_token" in prepared_here()  # this thread's held connection
    with app.app_context(), db.autocommit() as conn:
        conn.execute("DEALLOCATE ALL")
    assert "idp_find_token" not in prepared_here()
    assert introspect() is True
    again = client.post("/token", data={"grant_type": "client_credentials"}, headers=secret)
    assert again.status_code == 200  # RFC 6749 §4.4.3
    assert {"idp_find_token", "idp_insert_token"} <= prepared_here()


@pg_only
def test_an_error_is_psycopgs_own_and_leaves_the_connection_usable(app):
    divide = db.Prepared("test_divide", "SELECT 1 / %(n)s::INTEGER")
    with app.app_context(), db.autocommit() as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            divide.one(conn, {"n": 0})
        assert divide.one(conn, {"n": 1}) == (1,)  # autocommit: no aborted transaction
    with pytest.raises(DBAPIError), app.app_context(), db.autocommit() as conn:
        divide.one(conn, {"n": 0})  # as SQLAlchemy's, which errors.py answers


@pg_only
def test_a_changed_row_count_comes_back(app):
    with app.app_context(), db.autocommit() as conn:
        conn.execute("CREATE TEMPORARY TABLE counted (n INTEGER)")
        conn.execute("INSERT INTO counted VALUES (1), (2), (3)")
        update = db.Prepared("test_update", "UPDATE counted SET n = n + 1 WHERE n >= %(n)s")
        assert update.rowcount(conn, {"n": 2}) == 2
        assert update.rowcount(conn, {"n": 9}) == 0


@pg_only
def test_a_signed_in_request_loads_the_orms_own_objects_from_the_driver(app, client, auth, factory):
    # Every signed-in request reads its session row and user (models/session_sql.py): each
    # column must hold what the ORM's query gives (JSON address, amr and factors; aware
    # timestamps; booleans; NULLs), and the objects must behave as loaded ones.
    factory.user(
        username="carol", name="Carol Q", email="carol@example.com", email_verified=True,
        address={"country": "NZ", "locality": "Wellington"}, phone_number=None,
    )  # fmt: skip
    auth.login("carol")
    with client.session_transaction() as cookie:
        sid = cookie["sid"]
    with app.test_request_context():
        by_orm = db.session().execute(sessions._SESSION_AND_USER, {"sid": sid}).first()
        expected = [
            {c: getattr(obj, c) for c in columns}
            for obj, columns in zip(
                by_orm, (session_sql.SESSION_COLUMNS, session_sql.USER_COLUMNS), strict=True
            )
        ]
    with app.test_request_context():
        s = db.session()
        row, user = session_sql.find_session_and_user(sid)
        got = [
            {c: getattr(obj, c) for c in columns}
            for obj, columns in zip(
                (row, user), (session_sql.SESSION_COLUMNS, session_sql.USER_COLUMNS), strict=True
            )
        ]
        assert got == expected
        assert [type(v) for d in got for v in d.values()] == [
            type(v) for d in expected for v in d.values()
        ]
        assert user.address == {"country": "NZ", "locality": "Wellington"}
        # Persistent in the request's session with nothing to flush, like a query's objects;
        # the same row read again is the same object; a relationship loads when read.
        assert row in s and user in s and not s.dirty and not s.new
        assert s.get(User, user.id) is user
        assert session_sql.find_session_and_user(sid) == (row, user)
        assert user.groups == []
        assert session_sql.find_session_and_user("no such sid") is None
        # A change is flushed as an UPDATE of the loaded row.
        user.nickname = "cq"
        row.end_reason = "checked"
        s.commit()
    with app.app_context():
        assert db.session().scalar(select(User.nickname).where(User.username == "carol")) == "cq"
        reason = db.session().scalar(select(UserSession.end_reason).where(UserSession.sid == sid))
        assert reason == "checked"


@pg_only
def test_the_sign_in_finds_the_orms_own_user_from_the_driver(app, factory):
    # The password sign-in's look-up (models/user_sql.py): by username as typed or by email
    # in any case, every column as the ORM's query gives it, the object a loaded one.
    factory.user(username="Dora", email="Dora@Example.com", locked_until=None, failed_logins=2)
    for typed in ("Dora", " dora@example.COM "):
        with app.test_request_context():
            s = db.session()
            by_orm = s.scalar(
                login._FIND_USER, {"username": typed.strip(), "email": typed.strip().lower()}
            )
            expected = {c: getattr(by_orm, c) for c in user_sql.COLUMNS}
        with app.test_request_context():
            s = db.session()
            user = login.find_user(typed)
            assert {c: getattr(user, c) for c in user_sql.COLUMNS} == expected
            assert user in s and not s.dirty and s.get(User, user.id) is user
            login.clear_failures(user)  # a change flushes as an UPDATE of the loaded row
            s.commit()
    with app.test_request_context():
        assert login.find_user("dora") is None  # the username as typed; the email in any case
        assert login.find_user("Dora").failed_logins == 0


@pg_only
def test_a_code_its_sessions_link_and_its_event_are_written_together(
    app, client, auth, user, factory, monkeypatch
):
    # RFC 6749 §4.1.2: the code; back-channel logout's fan-out needs the session's link to
    # the client; the audit log records the issue. On PostgreSQL they are one statement
    # (token_sql.ISSUE_CODE), autocommitted or inside the request's transaction: all three
    # are written, or none.
    autocommitted = []  # how each code was written: both ways are checked
    issue_code = token_sql.issue_code

    def counted(conn, *args):
        autocommitted.append(conn.autocommit)
        issue_code(conn, *args)

    monkeypatch.setattr(token_sql, "issue_code", counted)
    real_row = audit.row
    auth.login()

    def stored(registered):
        with app.app_context():
            s = db.session()
            mine = AuthorizationCode.client_id == registered.client_id
            codes = s.scalars(select(AuthorizationCode).where(mine)).all()
            links = s.execute(
                select(SessionClient.session_id, SessionClient.first_at).where(
                    SessionClient.client_id == registered.client_id
                )
            ).all()
            events = s.scalars(
                select(AuditEvent).where(
                    AuditEvent.event == "code.issued", AuditEvent.target == registered.client_id
                )
            ).all()
            return codes, links, events, s.scalars(select(UserSession.id)).all()

    for first_party in (False, True):  # a consent read first, or nothing read: both ways
        monkeypatch.setattr(audit, "row", real_row)
        registered = factory.client(first_party=first_party, name=f"App {first_party}")
        code, _, params = auth.get_code(registered)
        (row,), links, (event,), sessions = stored(registered)
        assert row.code_hash == secret_hash(code) and row.user_id == user.id
        assert row.amr == ["pwd"] and row.used_at is None and row.nonce == params["nonce"]
        assert [link.session_id for link in links] == sessions and len(sessions) == 1
        assert (event.actor, event.ip) == (user.sub, "127.0.0.1")
        assert event.details == {"scope": row.scope}

        auth.get_code(registered)  # the session's first sign-in to the client is kept
        codes, links_again, events, _ = stored(registered)
        assert len(codes) == 2 and len(events) == 2 and links_again == links

        # An event the table refuses (an actor over 255 characters): nothing is written.
        monkeypatch.setattr(audit, "row", lambda *a, **k: {**real_row(*a, **k), "actor": "x" * 300})
        response = auth.authorize(auth.code_flow_params(registered)[0])
        assert response.status_code == 500 and "Location" not in response.headers
        codes, links_after, events, _ = stored(registered)
        assert len(codes) == 2 and len(events) == 2 and links_after == links
    assert set(autocommitted) == {True, False}
