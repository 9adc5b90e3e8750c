"""Shared fixtures: app -> client -> auth; user -> oauth clients -> tokens.

The suite runs on SQLite by default and on PostgreSQL when IDP_TEST_DATABASE_URL is set
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test). The schema is built once per
run with the real Alembic migrations; each test then gets an empty database (a copy of the
migrated SQLite file, or truncated PostgreSQL tables).
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from sqlalchemy import create_engine, text

from idp import create_app, db
from idp.mail import delivery
from idp.migrate import upgrade
from idp.models import Base, SigningKey
from idp.oauth import keys

from .factories import Factory
from .helpers import Auth

PG_URL = os.environ.get("IDP_TEST_DATABASE_URL")
ISSUER = "http://localhost"


def base_config(tmp_path, database_url) -> dict:
    return {
        "TESTING": True,
        "ISSUER": ISSUER,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "KEY_CACHE_SECONDS": 0,
    }


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """A database at the head migration: the SQLite template file, or the PG URL."""
    if PG_URL:
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        app = create_app(base_config(None, PG_URL))
        upgrade(app)
        db.engine(app).dispose()
        return PG_URL
    folder = tmp_path_factory.mktemp("template")
    url = f"sqlite:///{folder}/template.sqlite3"
    app = create_app(base_config(None, url))
    upgrade(app)
    db.engine(app).dispose()
    return str(folder / "template.sqlite3")


@pytest.fixture(scope="session")
def signing_key_rows():
    """Keys generated once per run (RSA generation is slow) and copied into each test."""
    return [keys.generate(alg) for alg in keys.ALGORITHMS]


@pytest.fixture(scope="session")
def emptying(migrated_database):
    """Empty every table of the PG test database, sequences back to 1. DELETE in reverse
    dependency order and ALTER SEQUENCE ... RESTART take about 15 ms where one TRUNCATE of
    every table took 120 (its per-table file work), which cost PG runs minutes."""
    engine = create_engine(PG_URL, pool_pre_ping=True)
    with engine.connect() as conn:
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        ).scalars()
        restarts = "; ".join(f'ALTER SEQUENCE "{name}" RESTART' for name in sequences)
    # audit_events is append-only (a trigger refuses DELETE, not TRUNCATE).
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    deletes = "; ".join(
        f'TRUNCATE "{name}"' if name == "audit_events" else f'DELETE FROM "{name}"'
        for name in tables
    )

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(deletes)
            if restarts:
                conn.exec_driver_sql(restarts)

    yield empty
    engine.dispose()


@pytest.fixture
def database_url(migrated_database, tmp_path, request):
    if PG_URL:
        empty = request.getfixturevalue("emptying")
        yield PG_URL
        empty()
        return
    path = tmp_path / "idp.sqlite3"
    shutil.copy(migrated_database, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def app_config(tmp_path, database_url, request) -> dict:
    config = base_config(tmp_path, database_url)
    for marker in request.node.iter_markers("config"):
        config.update(marker.kwargs)
    return config


@pytest.fixture
def app(app_config, signing_key_rows):
    app = create_app(app_config)
    with app.app_context():
        session = db.session()
        for row in signing_key_rows:
            session.add(SigningKey(kid=row.kid, alg=row.alg, private_jwk=row.private_jwk))
        session.commit()
    yield app
    # Mail queued by a test (a notice after a sign-in, a password change...) wakes the
    # app's sender thread; it must stop before the engine it uses is disposed.
    delivery.sender_thread(app).stop()
    db.engine(app).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_session(app):
    """A database session of the test's own, outside any app context (each request the test
    client makes gets its own context and session, as in production)."""
    session = app.extensions["idp.db"]()
    yield session
    session.close()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def factory(app):
    # No app context is held open here: the test client's requests would share its flask.g
    # (database session, Flask-Login's user, Flask-WTF's CSRF flag). Each call opens its own.
    return Factory(app)


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def user(factory):
    return factory.user(username="alice", email="alice@example.com", name="Alice Liddell")


@pytest.fixture
def oauth_client(factory):
    """A confidential client (client_secret_basic) allowed code + refresh tokens."""
    return factory.client()


@pytest.fixture
def public_client(factory):
    return factory.client(public=True, name="Public SPA")


@pytest.fixture
def steady_clock(monkeypatch):
    """The wall clock held in the middle of a minute while a test counts "N/minute".

    The sliding-window counter weighs the previous window's hits by how much of it is
    left, so a test that crossed a minute boundary saw one attempt too many pass (a flaky
    401 instead of 429 on a loaded machine). Counters in memory read time.time().
    """
    now = time.time()
    frozen = now - now % 60 + 30
    monkeypatch.setattr(time, "time", lambda: frozen)
