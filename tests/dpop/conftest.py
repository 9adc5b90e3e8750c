"""DPoP (RFC 9449) test helpers: a client's key pair that signs proofs with joserfc."""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey

from idp import db

# Fixtures of other suites used here: the admin signed in (client form tests) and a
# resource server allowed to exchange the RP's tokens (token exchange test).
from ..admin.conftest import admin, admin_client  # noqa: F401
from ..conftest import ISSUER
from ..helpers import basic_auth
from ..token_formats.conftest import apis, service  # noqa: F401
from ..token_formats.test_token_exchange import orders_api, user_tokens  # noqa: F401
from .proofs import Prover

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"
PAR_URL = ISSUER + "/par"


@pytest.fixture
def prover():
    return Prover()


@pytest.fixture
def other_prover():
    return Prover()


@pytest.fixture(scope="session")
def rsa_prover_key():
    return RSAKey.generate_key(2048, private=True)


def set_metadata(app, client_id: str, **metadata) -> None:
    from sqlalchemy import select

    from idp.models import Client

    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        row.client_metadata = {**(row.client_metadata or {}), **metadata}
        session.commit()


def set_column(app, client_id: str, **values) -> None:
    from sqlalchemy import select

    from idp.models import Client

    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def client_credentials(client, rp, headers=None, **data):
    """A client credentials token request of a confidential client, with extra headers."""
    return client.post(
        "/token",
        data={"grant_type": "client_credentials", **data},
        headers={**basic_auth(rp.client_id, rp.client_secret), **(headers or {})},
    )
