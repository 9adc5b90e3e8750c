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
from idp.oauth import cache

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
