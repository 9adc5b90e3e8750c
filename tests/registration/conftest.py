"""Dynamic registration tests (RFC 7591, RFC 7592): each module states its REGISTRATION mode
with ``pytest.mark.config(REGISTRATION=...)``; ``registrar`` plays the relying party."""

from __future__ import annotations

import pytest

from idp import db
from idp.oauth.registration import create_initial_access_token

from .rp import Registrar


@pytest.fixture
def registrar(client):
    return Registrar(client)


@pytest.fixture
def make_initial_token(app):
    """make_initial_token(expires_in=, max_uses=) -> (row id, plaintext token)."""

    def make(**kwargs):
        with app.app_context():
            session = db.session()
            row, token = create_initial_access_token(session, **kwargs)
            session.commit()
            return row.id, token

    return make
