"""Fixtures for JWT access tokens (RFC 9068), resources (RFC 8707) and token exchange (RFC 8693).

Two APIs are registered as resources: ``orders`` and ``inventory``. ``oauth_client`` (the
ordinary confidential relying party) may request both; ``service`` is a confidential client
of the client credentials grant that may request ``orders`` only.
"""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Client, Resource, Token, secret_hash
from idp.oauth import resources

from ..helpers import basic_auth

ORDERS = "https://api.example/orders"
INVENTORY = "https://api.example/inventory"
USERINFO = "http://localhost/userinfo"


def make_resource(app, identifier, scopes, clients=(), **fields) -> None:
    with app.app_context():
        row = Resource()
        problem = resources.save(
            row,
            identifier=identifier,
            name=fields.pop("name", identifier.rsplit("/", 1)[-1].title()),
            scopes=list(scopes),
            token_format=fields.pop("token_format", None),
            lifetime=fields.pop("lifetime", None),
            client_ids=[c.client_id for c in clients],
            introspection_client_id=fields.pop("introspection_client_id", None),
        )
        assert problem is None, problem
        db.session().commit()


def set_client(app, client_id: str, **columns) -> None:
    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        for name, value in columns.items():
            setattr(row, name, value)
        session.commit()


def stored_token(app, access_token: str) -> Token:
    with app.app_context():
        session = db.session()
        row = session.scalar(
            select(Token).where(Token.access_token_hash == secret_hash(access_token))
        )
        session.expunge_all()
        return row


def audit_events(app, event: str) -> list[AuditEvent]:
    with app.app_context():
        session = db.session()
        rows = session.scalars(select(AuditEvent).where(AuditEvent.event == event)).all()
        session.expunge_all()
        return list(rows)


def decode(client, token: str):
    """Verify ``token`` with the published JWKS (as a resource server would) and decode it."""
    keyset = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(token, keyset, algorithms=["RS256", "ES256"])


def is_jwt(token: str) -> bool:
    return token.count(".") == 2


def token_request(client, registered, **data):
    return client.post(
        "/token", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
    )


def introspect(client, registered, token: str):
    return client.post(
        "/introspect",
        data={"token": token},
        headers=basic_auth(registered.client_id, registered.client_secret),
    )


@pytest.fixture
def service(factory):
    return factory.client(
        name="Service", grant_types=("client_credentials",), redirect_uris=(), scope="reports"
    )


@pytest.fixture
def apis(app, oauth_client, service):
    """orders (read, write) for the RP and the service; inventory (read) for the RP."""
    make_resource(app, ORDERS, ["orders:read", "orders:write"], [oauth_client, service])
    make_resource(app, INVENTORY, ["inventory:read"], [oauth_client])
