"""The hot paths' autocommitted connection, held by each request thread between requests
(``db.HeldConnections``): what it keeps of the pool's rules.

PostgreSQL only: SQLite runs the hot paths through the session (``db.driver_path``).
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from idp import create_app, db

from ..conftest import PG_URL
from ..helpers import basic_auth

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)")


@pytest.fixture
def served(app_config):
    """An app of its own, with a pool of one steady connection, counting checkouts."""
    app = create_app({**app_config, "DATABASE_POOL_SIZE": 1, "DATABASE_PING_AFTER_IDLE": 3600})
    app.checkouts = []
    event.listen(db.engine(app), "checkout", lambda conn, *_: app.checkouts.append(conn))
    yield app
    db.engine(app).dispose()


def backend_pid(app) -> int:
    with app.app_context(), db.autocommit() as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def in_thread(function, *args):
    result = []
    worker = threading.Thread(target=lambda: result.append(function(*args)))
    worker.start()
    worker.join()
    return result[0]


def terminate(pid: int) -> None:
    with create_engine(PG_URL, poolclass=NullPool).connect() as killer:
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")


def test_a_thread_keeps_one_connection_in_autocommit_across_requests(served):
    first = backend_pid(served)
    assert backend_pid(served) == first
    assert len(served.checkouts) == 1  # one checkout for both statements
    with served.app_context(), db.autocommit() as conn:
        assert conn.autocommit  # one statement is its own transaction: no BEGIN, no COMMIT
        assert conn.execute("SELECT now() = statement_timestamp()").fetchone()[0]


def test_each_thread_has_its_own_and_an_ended_threads_goes_back_to_the_pool(served):
    mine = backend_pid(served)
    theirs = in_thread(backend_pid, served)
    assert theirs != mine  # never shared: psycopg connections are not for two threads at once
    assert db.engine(served).pool.checkedout() == 2
    again = in_thread(backend_pid, served)  # a thread per request (the development server):
    assert again == theirs  # the ended thread's connection is given back first, and reused
    assert db.engine(served).pool.checkedout() == 2


def test_a_thread_gives_its_connection_back_after_holding_it_for_a_while(served, monkeypatch):
    backend_pid(served)
    monkeypatch.setattr(db.HeldConnections, "HOLD_SECONDS", 0.0)
    backend_pid(served)  # held too long: back to the pool, where recycling rules apply
    assert len(served.checkouts) == 2


def test_an_error_gives_the_connection_back_out_of_autocommit_for_the_session(served):
    mine = backend_pid(served)
    with pytest.raises(DBAPIError), served.app_context(), db.autocommit() as conn:
        conn.execute("SELECT 1 / 0")
    with served.app_context():
        # The pool's one steady connection, given back: a session's transaction must be
        # one again (not autocommitted statement by statement).
        conn = db.session().connection().connection.driver_connection
        assert conn.info.backend_pid == mine
        assert not conn.autocommit
        db.session().rollback()
    assert backend_pid(served) == mine  # and the next hot-path statement takes it again
    assert len(served.checkouts) == 3


def test_a_backend_killed_while_held_fails_one_statement_then_recovers(served):
    # As with the pool within DATABASE_PING_AFTER_IDLE: no ping, so the first statement on
    # the dead connection fails (503 at the endpoints); the connection is dropped and the
    # next statement runs on a new one.
    dead = backend_pid(served)
    terminate(dead)
    with pytest.raises(OperationalError):
        backend_pid(served)
    assert backend_pid(served) != dead


def test_a_connection_idle_longer_than_the_threshold_is_pinged_and_replaced(app_config):
    app = create_app({**app_config, "DATABASE_PING_AFTER_IDLE": 0})
    try:
        dead = backend_pid(app)
        terminate(dead)
        assert backend_pid(app) != dead  # the ping found it dead: no failed statement
    finally:
        db.engine(app).dispose()


@pytest.mark.config(
    DATABASE_POOL_SIZE=2, DATABASE_MAX_OVERFLOW=0, DATABASE_POOL_TIMEOUT=2, KEY_CACHE_SECONDS=0
)
def test_the_held_connection_needs_no_larger_pool(client, auth, user, oauth_client):
    # Two connections in all, the least the refresh grant has ever needed: its locking
    # transaction, and the session that reloads the signing keys (every request here). The
    # thread's held connection would be a third: the thread gives it back first instead of
    # waiting for it (DATABASE_POOL_TIMEOUT, then 503).
    auth.login()
    issued = auth.tokens(oauth_client, scope="openid offline_access")
    secret = basic_auth(oauth_client.client_id, oauth_client.client_secret)
    looked_up = client.post("/introspect", data={"token": issued["access_token"]}, headers=secret)
    assert looked_up.get_json()["active"] is True  # RFC 7662 §2.2
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    )
    assert refreshed.status_code == 200 and refreshed.get_json()["refresh_token"]


def test_dispose_closes_every_held_connection(app_config):
    app = create_app(app_config)
    connections = []

    def hold():
        with app.app_context(), db.autocommit() as conn:
            connections.append((conn, conn.info.backend_pid))

    hold()
    in_thread(hold)
    db.engine(app).dispose()  # a worker's shutdown, a test's teardown
    assert len(connections) == 2 and all(conn.closed for conn, _ in connections)
    pids = [pid for _, pid in connections]
    with create_engine(PG_URL, poolclass=NullPool).connect() as other:
        for _ in range(50):  # a backend exits just after its client closed the connection
            alive = other.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": pids},
            ).scalar()
            if not alive:
                break
            time.sleep(0.05)
    assert alive == 0
