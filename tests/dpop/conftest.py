"""DPoP (RFC 9449) test helpers: a client's key pair that signs proofs with joserfc."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from idp import db
from idp.oauth import dpop

from ..conftest import ISSUER
from ..grants.conftest import make_client  # noqa: F401 - re-used by the tests here
from ..helpers import basic_auth

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"
PAR_URL = ISSUER + "/par"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Prover:
    """A DPoP key pair (§4.1) that makes proofs; each argument can make one thing wrong."""

    def __init__(self, key=None, alg="ES256"):
        self.key = key or ECKey.generate_key("P-256", private=True)
        self.alg = alg

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()  # RFC 7638

    def proof(self, htm="POST", htu=TOKEN_URL, *, access_token=None, header=None, **claims):
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        payload = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time())}
        if access_token is not None:
            payload["ath"] = dpop.ath(access_token)
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jws.serialize_compact(
            protected, json.dumps(payload), self.key, algorithms=[self.alg]
        )

    def headers(self, *args, **kwargs) -> dict:
        return {"DPoP": self.proof(*args, **kwargs)}


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
    from idp.models import Client
    from sqlalchemy import select

    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        row.client_metadata = {**(row.client_metadata or {}), **metadata}
        session.commit()


def set_column(app, client_id: str, **values) -> None:
    from idp.models import Client
    from sqlalchemy import select

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
