"""The sign-in's read of a user by the name typed, on the driver (psycopg, PostgreSQL).

Every password sign-in runs it before argon2 (``auth.login.find_user``). Through the ORM it
cost ~425 µs of CPU in a sign-in (SQLAlchemy's execution, the transaction it begins,
hydrating 30 columns), ~170 µs this way (bench/profile_sign_in.py). The statement is built
once from the model's table (the schema keeps its home in ``user.py``), prepared on the
thread's autocommitted connection (``db.Prepared``), and the row becomes the ORM object a
query would have loaded (``db.as_loaded``), which the sign-in then changes (failure count,
lockout, a rehash) as before.

SQLite keeps the ORM query (``db.driver_path()`` says which).
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from .. import db
from .user import User

U = User.__table__
COLUMNS = tuple(c.key for c in U.columns)

# The username as typed, or the email in any case (the ORM query of auth.login, as SQL).
FIND_USER = str(
    select(*U.columns)
    .where(or_(U.c.username == bindparam("username"), func.lower(U.c.email) == bindparam("email")))
    .compile(dialect=pg_dialect.dialect())
)
_FIND = db.Prepared("idp_find_user", FIND_USER)


def find_user(username: str, email: str) -> User | None:
    """The user named ``username`` or with the email ``email`` (lower case), as a loaded ORM
    object of the request's session; None if there is none."""
    with db.autocommit() as conn:
        found = _FIND.one(conn, {"username": username, "email": email})
    return None if found is None else db.as_loaded(User, dict(zip(COLUMNS, found, strict=True)))
