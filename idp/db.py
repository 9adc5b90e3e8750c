"""Database engine and the per-request SQLAlchemy session.

The engine is built once per app from ``DATABASE_URL``; a session is opened lazily the
first time a request (or CLI command) asks for one, kept on ``flask.g`` and closed at
teardown, so every worker shares nothing but the database itself.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # timeout = busy timeout: concurrent writers wait for the lock instead of failing.
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["idp.db"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)


def engine(app: Flask | None = None) -> Engine:
    factory = (app or current_app).extensions["idp.db"]
    return factory.kw["bind"]


def session() -> Session:
    """The session of the current request or CLI command."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["idp.db"]()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
