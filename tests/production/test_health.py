"""/healthz and /readyz, and 503 with recovery when the database goes away.

RFC 9110 §15.6.4 (503 Service Unavailable, Retry-After); RFC 6749 §4.1.2.1 and the OAuth
error registry's ``temporarily_unavailable`` for protocol answers.
"""

from __future__ import annotations

import selectors
import socket
import threading
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from idp import create_app, db
from idp.models import Token

from ..conftest import PG_URL
from ..helpers import basic_auth
from .test_rate_limits import REDIS_URL, needs_redis

CLOSED_PORT_DB = "postgresql+psycopg://postgres@127.0.0.1:9/idp"


def test_healthz_answers_without_the_database(app_config):
    app = create_app({**app_config, "DATABASE_URL": CLOSED_PORT_DB})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok"}}


@needs_redis
@pytest.mark.config(REDIS_URL=REDIS_URL)
def test_readyz_checks_redis_when_configured(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.config(REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
def test_readyz_is_503_when_redis_is_unreachable_and_names_no_url(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unavailable"},
    }
    assert b"hunter2" not in response.data and b"127.0.0.1" not in response.data


@pytest.fixture
def unreachable(app_config):
    """An app whose database is a closed port."""
    app = create_app({**app_config, "DATABASE_URL": CLOSED_PORT_DB, "RATELIMIT_ENABLED": False})
    yield app
    db.engine(app).dispose()


def test_readyz_is_503_when_the_database_is_unreachable(unreachable):
    response = unreachable.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "unavailable"}


PROTOCOL_REQUESTS = [
    ("POST", "/token", {"data": {"grant_type": "client_credentials"},
                        "headers": basic_auth("c", "s")}),
    ("POST", "/introspect", {"data": {"token": "t"}, "headers": basic_auth("c", "s")}),
    ("GET", "/userinfo", {"headers": {"Authorization": "Bearer some-token"}}),
    ("GET", "/jwks.json", {}),
]  # fmt: skip


def test_protocol_endpoints_answer_503_json_when_the_database_is_down(unreachable):
    for method, path, kwargs in PROTOCOL_REQUESTS:
        response = unreachable.test_client().open(path, method=method, **kwargs)
        assert response.status_code == 503, path
        body = response.get_json()
        assert body["error"] == "temporarily_unavailable"
        assert "Traceback" not in body["error_description"]
        assert int(response.headers["Retry-After"]) > 0
        assert response.headers["Cache-Control"] == "no-store"


def test_pages_answer_a_friendly_503_when_the_database_is_down(unreachable):
    for path in ("/authorize?client_id=abc&response_type=code", "/account/"):
        client = unreachable.test_client()
        with client.session_transaction() as browser_session:  # a signed-in browser
            browser_session["_user_id"] = "someone"
            browser_session["sid"] = "some-session"
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.mimetype == "text/html"
        text = response.get_data(as_text=True)
        assert "Temporarily unavailable" in text
        assert "Traceback" not in text and "psycopg" not in text and "9/idp" not in text
        assert int(response.headers["Retry-After"]) > 0


class Proxy:
    """A TCP relay to PostgreSQL on a fixed local port that can be stopped and started.

    Stopping closes the listener and every relayed connection, as a database restart or a
    network cut would; starting listens on the same port again.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = None
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()

    def _run(self, listener):
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    sock = key.fileobj
                    if sock is listener:
                        inbound, _ = listener.accept()
                        outbound = socket.create_connection(self.target)
                        peers[inbound], peers[outbound] = outbound, inbound
                        selector.register(inbound, selectors.EVENT_READ)
                        selector.register(outbound, selectors.EVENT_READ)
                        continue
                    data = b""
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        pass
                    if data:
                        peers[sock].sendall(data)
                    else:
                        for end in (sock, peers.pop(sock)):
                            peers.pop(end, None)
                            selector.unregister(end)
                            end.close()
        finally:
            for sock in list(peers):
                sock.close()
            selector.close()
            listener.close()


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)")
def test_service_recovers_by_itself_when_the_database_comes_back(app, app_config, factory):
    # Nothing is written while the database is away, and no restart is needed after.
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    url = make_url(PG_URL)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    served = create_app({**app_config, "DATABASE_URL": proxied_url, "RATELIMIT_ENABLED": False})
    client = served.test_client()
    request = {
        "data": {"grant_type": "client_credentials"},
        "headers": basic_auth(registered.client_id, registered.client_secret),
    }

    def issued() -> int:
        with app.app_context():
            return db.session().scalar(select(func.count(Token.id)))

    try:
        assert client.get("/readyz").status_code == 200
        assert client.post("/token", **request).status_code == 200
        assert issued() == 1

        proxy.stop()  # the database goes away, with the pooled connections
        down = client.post("/token", **request)
        assert down.status_code == 503
        assert down.get_json()["error"] == "temporarily_unavailable"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        assert issued() == 1

        proxy.start()  # back on the same port: the next request just works
        assert client.get("/readyz").status_code == 200
        assert client.post("/token", **request).status_code == 200
        assert issued() == 2
    finally:
        db.engine(served).dispose()
        if not proxy._stop.is_set():
            proxy.stop()


def _terminate_backends(application_name: str) -> int:
    """Kill, from another connection, every server process of an app's connections (those
    in its pool and the one each thread holds for the hot paths, db.HeldConnections)."""
    with create_engine(PG_URL, poolclass=NullPool).connect() as killer:
        return killer.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :name"
            ),
            {"name": application_name},
        ).scalar()


@pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)")
@pytest.mark.parametrize("ping_after_idle", [0, 3600])
def test_connection_dropped_while_idle(app_config, factory, ping_after_idle):
    # A pooled connection idle longer than DATABASE_PING_AFTER_IDLE is pinged before use and
    # replaced if dead: the request succeeds. Within the threshold there is no ping (the
    # round trip saved per request): the first request on the dead connection answers 503,
    # the pool drops its older connections, and the next request succeeds (nothing written).
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    name = f"idp-test-{uuid.uuid4().hex[:12]}"
    url = make_url(PG_URL).update_query_dict({"application_name": name})
    served = create_app({
        **app_config, "DATABASE_URL": url.render_as_string(hide_password=False),
        "RATELIMIT_ENABLED": False,
        "DATABASE_PING_AFTER_IDLE": ping_after_idle, "DATABASE_POOL_SIZE": 1,
    })  # fmt: skip
    client = served.test_client()
    request = {
        "data": {"grant_type": "client_credentials"},
        "headers": basic_auth(registered.client_id, registered.client_secret),
    }
    try:
        assert client.post("/token", **request).status_code == 200
        assert _terminate_backends(name) == 1
        first = client.post("/token", **request)
        if ping_after_idle == 0:
            assert first.status_code == 200
        else:
            assert first.status_code == 503
            assert first.get_json()["error"] == "temporarily_unavailable"
            assert client.post("/token", **request).status_code == 200
    finally:
        db.engine(served).dispose()


def test_database_pool_is_sized_per_worker_from_configuration(app_config):
    # docs/deploy.md: workers x (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW) connections.
    url = PG_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/unused"
    app = create_app({**app_config, "DATABASE_URL": url, "DATABASE_POOL_SIZE": 3,
                      "DATABASE_MAX_OVERFLOW": 2, "DATABASE_POOL_TIMEOUT": 4})  # fmt: skip
    pool = db.engine(app).pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 2, 4)
