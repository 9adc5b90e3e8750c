"""Fixtures for sessions and logout: clients with logout metadata, and a dispatcher that is
stopped after every test (no delivery thread outlives its app)."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import db
from idp.models import Client
from idp.oauth import logout

from ..factories import Factory


class LogoutFactory(Factory):
    """The shared factory, plus clients registered with logout metadata."""

    def client(self, *args, logout_metadata: dict | None = None, **kwargs):
        registered = super().client(*args, **kwargs)
        if logout_metadata:
            with self.app.app_context():
                s = db.session()
                row = s.scalar(select(Client).where(Client.client_id == registered.client_id))
                for name, value in logout_metadata.items():
                    setattr(row, name, value)
                s.commit()
                registered.row = row
        return registered


@pytest.fixture
def factory(app):
    return LogoutFactory(app)


@pytest.fixture(autouse=True)
def stop_dispatcher(app):
    yield
    logout.dispatcher(app).stop()


def find(app, statement):
    """All rows of a select, read in a fresh app context."""
    with app.app_context():
        return list(db.session().scalars(statement))


def decode(client, token: str):
    """Verify a JWT against the published JWKS, as a relying party does."""
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(token, keys, algorithms=["RS256", "ES256"])
