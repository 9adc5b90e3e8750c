"""JWT access tokens (RFC 9068): format, claims, signature, and life next to opaque tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from authlib.oidc.core.util import create_half_hash
from sqlalchemy import select

from idp import create_app, db
from idp.config import ConfigError
from idp.models import Token, secret_hash, utcnow

from ..helpers import basic_auth
from .conftest import (
    ORDERS,
    USERINFO,
    decode,
    introspect,
    is_jwt,
    make_resource,
    set_client,
    stored_token,
    token_request,
)


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def test_code_flow_access_token_is_an_at_jwt_verifiable_with_the_jwks(
    app, client, auth, user, oauth_client
):
    # RFC 9068 §2.1: typ "at+jwt", signed (RS256 by default); §2.2: iss exp aud sub client_id
    # iat jti (+ scope §2.2.3, auth_time amr §2.2.1 when a user signed in).
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile")
    decoded = decode(client, tokens["access_token"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] in {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    claims = decoded.claims
    assert claims["iss"] == "http://localhost"
    assert claims["sub"] == user.sub
    assert claims["client_id"] == oauth_client.client_id
    assert claims["aud"] == USERINFO  # no resource: used at the UserInfo endpoint
    assert claims["scope"] == "openid profile"
    assert claims["exp"] - claims["iat"] == tokens["expires_in"]
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"]
    assert claims["jti"]
    # Stored as before: the SHA-256 of the token string, plus the jti.
    row = stored_token(app, tokens["access_token"])
    assert row.access_token_hash == hashlib.sha256(tokens["access_token"].encode()).hexdigest()
    assert row.jti == claims["jti"]
    assert row.audience == [USERINFO]


def test_client_credentials_jwt_has_the_client_as_subject(client, service):
    # RFC 9068 §2.2: with no resource owner, sub identifies the client; no auth_time/amr.
    response = token_request(client, service, grant_type="client_credentials", scope="reports")
    assert response.status_code == 200, response.get_json()
    claims = decode(client, response.get_json()["access_token"]).claims
    assert claims["sub"] == service.client_id == claims["client_id"]
    assert claims["aud"] == service.client_id  # RFC 9068 §3: the default resource
    assert claims["scope"] == "reports"
    assert "auth_time" not in claims and "amr" not in claims


@pytest.mark.config(ACCESS_TOKEN_SIGNING_ALG="ES256")
def test_access_token_algorithm_follows_the_setting(client, service):
    # RFC 9068 §2.1 / §4: signed with an asymmetric algorithm of the server's keys.
    response = token_request(client, service, grant_type="client_credentials")
    decoded = decode(client, response.get_json()["access_token"])
    assert decoded.header["alg"] == "ES256" and decoded.header["typ"] == "at+jwt"


@pytest.mark.config(ACCESS_TOKEN_FORMAT="opaque")
def test_opaque_format_setting_issues_opaque_tokens_that_still_work(
    app, client, auth, user, oauth_client
):
    # RFC 6750 §1.3 / RFC 7662: an opaque token is meaningful only to the server, which
    # answers for it at UserInfo and introspection.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile")
    assert not is_jwt(tokens["access_token"])
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    body = introspect(client, oauth_client, tokens["access_token"]).get_json()
    assert body["active"] is True and "jti" not in body
    assert stored_token(app, tokens["access_token"]).jti is None


def test_client_token_format_overrides_the_server_default(app, client, auth, user, oauth_client):
    # Issue 4: opaque tokens stay available per client.
    set_client(app, oauth_client.client_id, access_token_format="opaque")
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    assert not is_jwt(tokens["access_token"])


@pytest.mark.config(ACCESS_TOKEN_FORMAT="opaque")
def test_resource_token_format_overrides_client_and_server(client, app, oauth_client, service):
    # Issue 4: the format may be chosen per resource; the resource's choice wins.
    make_resource(app, ORDERS, ["orders:read"], [service], token_format="jwt")
    set_client(app, service.client_id, access_token_format="opaque")
    with_resource = token_request(
        client, service, grant_type="client_credentials", resource=ORDERS
    ).get_json()
    assert decode(client, with_resource["access_token"]).claims["aud"] == ORDERS
    without = token_request(client, service, grant_type="client_credentials").get_json()
    assert not is_jwt(without["access_token"])


def test_jwt_access_token_works_at_userinfo_and_introspection(client, auth, user, oauth_client):
    # RFC 7662 §2.2: introspection describes the JWT, with its jti and aud.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile")
    info = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 200 and info.get_json()["sub"] == user.sub
    body = introspect(client, oauth_client, tokens["access_token"]).get_json()
    claims = decode(client, tokens["access_token"]).claims
    assert body["active"] is True
    assert body["jti"] == claims["jti"] and body["aud"] == claims["aud"]
    assert body["exp"] == claims["exp"] and body["sub"] == user.sub


def test_revoked_jwt_is_inactive_at_introspection(app, client, auth, user, oauth_client):
    # RFC 7009 §2 + RFC 7662 §2.2: once revoked, the JWT (its jti) is no longer active,
    # although its signature and exp still verify.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    revoked = client.post(
        "/revoke",
        data={"token": tokens["access_token"]},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert revoked.status_code == 200
    assert introspect(client, oauth_client, tokens["access_token"]).get_json() == {"active": False}
    row = stored_token(app, tokens["access_token"])
    assert row.revoked_at is not None
    assert row.jti == decode(client, tokens["access_token"]).claims["jti"]
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


def test_expired_jwt_is_inactive(app, client, auth, user, oauth_client):
    # RFC 7662 §2.2: an expired token is not active.

    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    with app.app_context():
        session = db.session()
        row = session.scalar(
            select(Token).where(Token.access_token_hash == secret_hash(tokens["access_token"]))
        )
        row.access_expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    assert introspect(client, oauth_client, tokens["access_token"]).get_json() == {"active": False}


def test_refresh_issues_a_new_jwt_with_the_original_sign_in(client, auth, user, oauth_client):
    # RFC 9068 §2.2: a fresh jti per token; §2.2.1 auth_time is the original sign-in.
    auth.login()
    first = auth.tokens(oauth_client, scope="openid offline_access")
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    ).get_json()
    old = decode(client, first["access_token"]).claims
    new = decode(client, refreshed["access_token"]).claims
    assert new["jti"] != old["jti"]
    assert new["auth_time"] == old["auth_time"] and new["amr"] == old["amr"]
    assert new["sub"] == old["sub"]


def test_id_token_at_hash_covers_the_jwt_access_token(client, auth, user, oauth_client):
    # OIDC Core §3.1.3.6: at_hash is the left half of the hash of the access token as issued.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    id_claims = decode(client, tokens["id_token"]).claims
    expected = create_half_hash(tokens["access_token"], "RS256").decode()
    assert id_claims["at_hash"] == expected


def test_sign_out_revokes_jwt_access_tokens_of_the_session(client, auth, user, oauth_client):
    # Sign-out policy (docs): tokens issued in a session are revoked when it ends.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    auth.logout()
    assert introspect(client, oauth_client, tokens["access_token"]).get_json() == {"active": False}


@pytest.mark.parametrize(
    ("name", "value"), [("ACCESS_TOKEN_FORMAT", "paseto"), ("ACCESS_TOKEN_SIGNING_ALG", "HS256")]
)
def test_unknown_format_or_algorithm_is_refused_at_start(app_config, name, value):
    # RFC 9068 §4: asymmetric signatures only; the format is jwt or opaque.
    with pytest.raises(ConfigError, match=name):
        create_app({**app_config, name: value})
