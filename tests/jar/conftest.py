"""JWT-secured authorization requests (RFC 9101): clients with registered keys, request
objects, and the round trips through /authorize and PAR.

The JAR client is confidential (client_secret_basic) with a jwks for its request objects:
RFC 9101 only needs the client's keys, not private_key_jwt."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import update

from idp import db
from idp.models import Client

from ..conftest import ISSUER
from ..grants.conftest import make_client, public_jwks
from ..helpers import basic_auth, csrf_token, pkce_pair

REDIRECT_URI = "https://rp.example/cb"


@dataclass
class JARClient:
    client_id: str
    client_secret: str | None
    key: object
    redirect_uri: str


@pytest.fixture(scope="session")
def rsa_key():
    return RSAKey.generate_key(2048, parameters={"kid": "jar-rsa"}, private=True)


@pytest.fixture(scope="session")
def ec_key():
    return ECKey.generate_key("P-256", parameters={"kid": "jar-ec"}, private=True)


@pytest.fixture(scope="session")
def stranger_key():
    """Not registered by any client; same kid as the client's key."""
    return RSAKey.generate_key(2048, parameters={"kid": "jar-rsa"}, private=True)


def set_client(app, client_id: str, **values) -> None:
    with app.app_context():
        session = db.session()
        session.execute(update(Client).where(Client.client_id == client_id).values(**values))
        session.commit()


@pytest.fixture
def jar_client(app, rsa_key, ec_key):
    registered = make_client(
        app,
        auth_method="client_secret_basic",
        metadata={"jwks": public_jwks(rsa_key, ec_key)},
        redirect_uris=[REDIRECT_URI, "https://rp.example/other"],
        name="JAR App",
    )
    return JARClient(registered.client_id, registered.client_secret, rsa_key, REDIRECT_URI)


def authorization_claims(registered, **extra) -> tuple[dict, str]:
    """Authorization request parameters as request object claims, with PKCE."""
    verifier, challenge = pkce_pair()
    claims = {
        "response_type": "code",
        "client_id": registered.client_id,
        "redirect_uri": registered.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    claims.update(extra)
    return claims, verifier


def request_object(
    registered,
    claims: dict,
    *,
    key=None,
    alg: str = "PS256",
    typ: str | None = "oauth-authz-req+jwt",
    lifetime: int = 300,
    **overrides,
) -> str:
    """A request object per RFC 9101 §4 (FAPI 2.0: iss, aud, exp, nbf, jti)."""
    now = int(time.time())
    body = {
        "iss": registered.client_id,
        "aud": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(12),
        **claims,
    }
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    key = key or registered.key
    header = {"alg": alg, "kid": key.kid}
    if typ:
        header["typ"] = typ
    return jwt.encode(header, body, key, algorithms=[alg])


def authorize_url(**params) -> str:
    return "/authorize?" + urlencode(params)


def push(http, registered, data: dict):
    return http.post(
        "/par", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
    )


def consent(http, response):
    """Answer the consent page the way the browser would (POST to its form action)."""
    page = response.get_data(as_text=True)
    action = page.split('<form method="post" action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return http.post(action, data={"csrf_token": csrf_token(page), "allow": "Allow"})
