"""Fixtures for the device grant (RFC 8628), JWT client authentication (RFC 7523) and pushed
authorization requests (RFC 9126): device clients, JWT-authenticating clients, assertions,
and a race helper that really overlaps requests in the database."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import update

from idp import db
from idp.oauth.client_auth import ASSERTION_TYPE
from idp.oauth.clients import create_client

from ..conftest import ISSUER
from ..helpers import basic_auth

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "openid profile email offline_access"


@dataclass
class JWTClient:
    client_id: str
    client_secret: str | None
    key: object  # the private key (private_key_jwt) or None
    redirect_uri: str


@pytest.fixture(scope="session")
def rsa_key():
    return RSAKey.generate_key(2048, parameters={"kid": "client-key-1"}, private=True)


@pytest.fixture(scope="session")
def other_rsa_key():
    return RSAKey.generate_key(2048, parameters={"kid": "client-key-2"}, private=True)


@pytest.fixture(scope="session")
def ec_key():
    return ECKey.generate_key("P-256", parameters={"kid": "client-ec"}, private=True)


def public_jwks(*keys) -> dict:
    return KeySet(list(keys)).as_dict(private=False)


def make_client(app, *, auth_method, metadata=None, public=False, grant_types=None, **extra):
    """A client created the way the CLI creates it, with client metadata merged in."""
    grant_types = grant_types or ("authorization_code", "refresh_token", "client_credentials")
    redirect_uris = extra.pop("redirect_uris", ["https://rp.example/cb"])
    with app.app_context():
        session = db.session()
        row, secret = create_client(
            session,
            name=extra.pop("name", "JWT App"),
            redirect_uris=redirect_uris,
            grant_types=list(grant_types),
            scope=extra.pop("scope", SCOPE + " api.read"),
            public=public,
            first_party=extra.pop("first_party", False),
            auth_method=auth_method,
        )
        row.client_metadata = dict(metadata or {})
        session.commit()
        return JWTClient(row.client_id, secret, None, redirect_uris[0] if redirect_uris else "")


@pytest.fixture
def pkjwt_client(app, rsa_key):
    """private_key_jwt with an inline jwks (RFC 7591 §2)."""
    registered = make_client(
        app, auth_method="private_key_jwt", metadata={"jwks": public_jwks(rsa_key)}
    )
    registered.key = rsa_key
    return registered


@pytest.fixture
def csjwt_client(app):
    """client_secret_jwt: HMAC with the client secret (OIDC Core §9)."""
    return make_client(app, auth_method="client_secret_jwt")


def assertion(
    client_id: str,
    key,
    *,
    alg: str = "RS256",
    aud: str | list[str] = ISSUER + "/token",
    lifetime: int = 60,
    jti: str | None = "random",
    kid: str | None = "default",
    **overrides,
) -> str:
    """A client assertion per RFC 7523 §3 (iss = sub = client_id)."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(12) if jti == "random" else jti,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": alg}
    if kid == "default":
        kid = getattr(key, "kid", None)
    if kid:
        header["kid"] = kid
    return jwt.encode(header, claims, key, algorithms=[alg])


def secret_key(secret: str):
    from joserfc.jwk import OctKey

    return OctKey.import_key(secret.encode())


def client_assertion_form(token: str, **extra) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}


def client_credentials(http, token: str, **extra):
    """A client credentials token request authenticated only by the assertion."""
    data = {"grant_type": "client_credentials", "scope": "api.read"}
    data.update(client_assertion_form(token, **extra))
    return http.post("/token", data=data)


def set_row(app, model, row_id, **values) -> None:
    with app.app_context():
        session = db.session()
        session.execute(update(model).where(model.id == row_id).values(**values))
        session.commit()


# --- device grant --------------------------------------------------------------------------


@pytest.fixture
def device_client(factory):
    """A confidential device client (RFC 8628 §3.1) that may also refresh."""
    return factory.client(
        name="Living Room TV", grant_types=(DEVICE_GRANT, "refresh_token"), redirect_uris=()
    )


@pytest.fixture
def public_device_client(factory):
    return factory.client(
        name="Public TV", public=True, grant_types=(DEVICE_GRANT,), redirect_uris=()
    )


def device_authorization(http, registered, scope: str | None = "openid profile", **extra):
    data = dict(extra)
    if scope is not None:
        data["scope"] = scope
    if registered.client_secret:
        return http.post(
            "/device_authorization",
            data=data,
            headers=basic_auth(registered.client_id, registered.client_secret),
        )
    return http.post("/device_authorization", data={"client_id": registered.client_id, **data})


def poll(http, registered, device_code: str):
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    if registered.client_secret:
        return http.post(
            "/token", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
        )
    return http.post("/token", data={"client_id": registered.client_id, **data})


def race(app, n: int, request) -> list:
    """Run request(test_client) from n threads released together; returns the responses."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        http = app.test_client()
        try:
            barrier.wait(timeout=10)
            results[i] = request(http)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a request hung"
    for result in results:
        assert not isinstance(result, BaseException), repr(result)
    return results
