"""The signed-in request's read of its ``user_sessions`` row and user, on the driver
(psycopg, PostgreSQL).

Every request of a signed-in browser runs it (Flask-Login's user loader,
``auth.session.load_user``). Through the ORM the loader cost ~400 µs of CPU warm
(SQLAlchemy's execution, the transaction it begins, hydrating 42 columns), ~150 µs this
way. The statement is built once from the two models' tables (the schema keeps its home in
``session.py`` and ``user.py``), prepared on the thread's autocommitted connection
(``db.Prepared``), and the two rows become the ORM objects a query would have loaded
(``db.as_loaded``): persistent in the request's session, so pages, the admin and the
loader's own changes (the idle touch, ending an expired row) use them as before.

SQLite keeps the ORM query (``db.driver_path()`` says which).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from .. import db
from .session import UserSession
from .user import User

S = UserSession.__table__
U = User.__table__
SESSION_COLUMNS = tuple(c.key for c in S.columns)
USER_COLUMNS = tuple(c.key for c in U.columns)
_N = len(SESSION_COLUMNS)

# Every column of both rows, in table order: they are the ORM objects pages read.
FIND_SESSION_AND_USER = str(
    select(*S.columns, *U.columns)
    .select_from(S.join(U, U.c.id == S.c.user_id))
    .where(S.c.sid == bindparam("sid"))
    .compile(dialect=pg_dialect.dialect())
)
_FIND = db.Prepared("idp_find_session_and_user", FIND_SESSION_AND_USER)


def find_session_and_user(sid: str) -> tuple[UserSession, User] | None:
    """The session row named ``sid`` and its user, as loaded ORM objects of the request's
    session; None if there is no such row."""
    with db.autocommit() as conn:
        found = _FIND.one(conn, {"sid": sid})
    if found is None:
        return None
    row = db.as_loaded(UserSession, dict(zip(SESSION_COLUMNS, found[:_N], strict=True)))
    user = db.as_loaded(User, dict(zip(USER_COLUMNS, found[_N:], strict=True)))
    return row, user
