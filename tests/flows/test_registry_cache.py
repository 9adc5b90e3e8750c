"""The worker's cache of client and resource registrations (oauth/cache.py).

A change made through this worker applies to the next request; one made elsewhere (another
worker, the CLI, plain SQL) within REGISTRY_CACHE_SECONDS. RFC 6749 §5.2: a client that is
disabled or whose secret changed gets invalid_client.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.pool import NullPool

from idp import db
from idp.models import Client
from idp.oauth import cache, server

from ..helpers import basic_auth

CC = {"grant_type": "client_credentials", "scope": "api"}


@pytest.fixture
def service(factory):
    return factory.client(grant_types=("client_credentials",), scope="api", redirect_uris=())


def token(client, service, secret=None):
    headers = basic_auth(service.client_id, secret or service.client_secret)
    return client.post("/token", data=CC, headers=headers)


def disable_elsewhere(app, client_id: str) -> None:
    """As another worker or the CLI would: a separate connection, no ORM flush here."""
    with create_engine(app.config["DATABASE_URL"], poolclass=NullPool).begin() as conn:
        conn.execute(update(Client).where(Client.client_id == client_id).values(disabled=True))


class Clock:
    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(cache.time, "monotonic", lambda: self.now)


def test_change_made_elsewhere_applies_after_the_cache_lifetime(app, client, service, monkeypatch):
    clock = Clock(monkeypatch)
    assert token(client, service).status_code == 200  # now cached
    disable_elsewhere(app, service.client_id)
    clock.now += app.config["REGISTRY_CACHE_SECONDS"] - 0.5
    assert token(client, service).status_code == 200  # documented staleness window
    clock.now += 1
    refused = token(client, service)
    assert refused.status_code == 401  # RFC 6749 §5.2
    assert refused.get_json()["error"] == "invalid_client"


@pytest.mark.config(REGISTRY_CACHE_SECONDS=0)
def test_without_caching_a_change_elsewhere_applies_at_once(app, client, service):
    assert token(client, service).status_code == 200
    disable_elsewhere(app, service.client_id)
    assert token(client, service).get_json()["error"] == "invalid_client"


def test_change_made_in_this_worker_applies_at_once(app, client, service, db_session):
    assert token(client, service).status_code == 200
    row = db_session.scalar(select(Client).where(Client.client_id == service.client_id))
    row.client_secret_hash = None  # as a secret rotation or removal does, through the ORM
    db_session.commit()
    assert token(client, service).get_json()["error"] == "invalid_client"


def test_bulk_delete_in_this_worker_applies_at_once(app, client, service, db_session):
    assert token(client, service).status_code == 200
    db_session.execute(delete(Client).where(Client.client_id == service.client_id))
    db_session.commit()
    assert token(client, service).get_json()["error"] == "invalid_client"


def test_unknown_client_ids_are_not_cached(app, client):
    for n in range(50):
        made_up = basic_auth(f"made-up-{n}", "secret")
        assert client.post("/token", data=CC, headers=made_up).status_code == 401
    assert app.extensions["idp.registry"]._clients == {}


def test_each_caller_gets_its_own_copy(app, service):
    with app.test_request_context():
        first = cache.registry().client(service.client_id)
        first.redirect_uris.append("https://evil.example/cb")
        first.scope = "admin"
        again = cache.registry().client(service.client_id)
        assert again is not first
        assert again.scope == "api" and "https://evil.example/cb" not in again.redirect_uris
        assert not db.session().new  # copies never join the request's session


def introspect(client, service, token_value, secret=None):
    headers = basic_auth(service.client_id, secret or service.client_secret)
    return client.post("/introspect", data={"token": token_value}, headers=headers)


@pytest.fixture
def authenticated(monkeypatch):
    """(endpoint, client object) of every client authentication that succeeded."""
    seen = []
    original = Client.check_endpoint_auth_method

    def recording(self, method, endpoint):
        allowed = original(self, method, endpoint)
        if allowed:
            seen.append((endpoint, self))
        return allowed

    monkeypatch.setattr(Client, "check_endpoint_auth_method", recording)
    return seen


def test_introspection_reads_one_shared_client_and_the_token_endpoint_gets_copies(
    app, client, service, authenticated, db_session
):
    # RFC 7662 §2.1: introspection only reads its caller (whose tokens it may see); the
    # worker's cache then gives it one instance per registration, not a copy per request.
    access = token(client, service).get_json()["access_token"]
    for _ in range(2):
        answer = introspect(client, service, access)
        assert answer.status_code == 200 and answer.get_json()["active"] is True
    assert introspect(client, service, access, secret="wrong").status_code == 401
    with app.test_request_context():  # outside client authentication: a copy, as before
        assert server.query_client(service.client_id) is not cache.registry().shared(
            service.client_id
        )
    token(client, service)  # after a refusal at introspection, the token endpoint again
    endpoints = [endpoint for endpoint, _ in authenticated]
    assert endpoints == ["token", "introspection", "introspection", "token"]
    first_token, first, second, second_token = (obj for _, obj in authenticated)
    assert first is second
    with app.test_request_context():
        assert first is cache.registry().shared(service.client_id)
    assert first_token is not second_token and first not in (first_token, second_token)
    # A change made in this worker reaches introspection at once (a new shared instance).
    row = db_session.scalar(select(Client).where(Client.client_id == service.client_id))
    row.client_secret_hash = None
    db_session.commit()
    refused = introspect(client, service, access)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
