"""Token introspection (RFC 7662) at /introspect."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Token, secret_hash, utcnow

from ..helpers import basic_auth

ISSUER = "http://localhost"


@pytest.fixture
def tokens(auth, user, oauth_client) -> dict:
    auth.login()
    return auth.tokens(oauth_client, scope="openid profile")


def introspect(client, rp, data: dict):
    return client.post("/introspect", data=data, headers=basic_auth(rp.client_id, rp.client_secret))


def set_expiry(app, access_token: str, **columns) -> None:
    with app.app_context():
        session = db.session()
        row = session.scalar(
            select(Token).where(Token.access_token_hash == secret_hash(access_token))
        )
        for name, value in columns.items():
            setattr(row, name, value)
        session.commit()


def test_introspection_requires_client_authentication(client, tokens):
    # RFC 7662 §2.1: the endpoint MUST require authorization; §2.3 / RFC 6749 §5.2 401.
    response = client.post("/introspect", data={"token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert "active" not in response.get_json()


def test_introspection_with_wrong_secret_is_invalid_client(client, oauth_client, tokens):
    # RFC 7662 §2.3: failed client authentication is an error, not an inactive token.
    response = client.post(
        "/introspect",
        data={"token": tokens["access_token"]},
        headers=basic_auth(oauth_client.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_public_client_cannot_introspect(client, auth, user, public_client):
    # RFC 7662 §2.1 and §4: a client_id alone is no authentication; token scanning risk.
    auth.login()
    issued = auth.tokens(public_client)
    response = client.post(
        "/introspect", data={"token": issued["access_token"], "client_id": public_client.client_id}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_active_access_token_metadata(client, user, oauth_client, tokens):
    # RFC 7662 §2.2: active plus scope, client_id, username, token_type, exp, iat, sub, iss.
    started = int(time.time())
    response = introspect(client, oauth_client, {"token": tokens["access_token"]})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["active"] is True
    assert body["scope"] == "openid profile"
    assert body["client_id"] == oauth_client.client_id
    assert body["sub"] == user.sub
    assert body["username"] == "alice"
    assert body["token_type"] == "Bearer"
    assert body["iss"] == ISSUER
    assert body["iat"] <= started + 1
    assert body["exp"] - body["iat"] == tokens["expires_in"]


def test_active_access_token_with_post_authentication(app, client, factory, user, auth):
    # RFC 7662 §2.1 with RFC 6749 §2.3.1 client_secret_post.
    rp = factory.client(name="Post App", auth_method="client_secret_post")
    auth.login()
    code, verifier, _ = auth.get_code(rp)
    secret = {"client_id": rp.client_id, "client_secret": rp.client_secret}
    exchange = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    issued = auth.token(rp, {**exchange, "redirect_uri": rp.redirect_uri, **secret}, headers={})
    issued = issued.get_json()
    response = client.post(
        "/introspect",
        data={
            "token": issued["access_token"],
            "client_id": rp.client_id,
            "client_secret": rp.client_secret,
        },
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is True


def test_refresh_token_introspection(app, client, oauth_client, tokens):
    # RFC 7662 §2.1: refresh tokens can be introspected too; exp is the refresh expiry.
    response = introspect(
        client, oauth_client, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )
    body = response.get_json()
    assert body["active"] is True
    assert body["client_id"] == oauth_client.client_id
    with app.app_context():
        row = db.session().scalar(
            select(Token).where(Token.refresh_token_hash == secret_hash(tokens["refresh_token"]))
        )
        assert body["exp"] == int(row.refresh_expires_at.timestamp())
    assert body["token_type"] != "Bearer"


def test_wrong_hint_still_finds_token(client, oauth_client, tokens):
    # RFC 7662 §2.1: if the hint is wrong the server MUST extend its search.
    response = introspect(
        client, oauth_client, {"token": tokens["access_token"], "token_type_hint": "refresh_token"}
    )
    assert response.get_json()["active"] is True
    assert response.get_json()["token_type"] == "Bearer"


@pytest.mark.parametrize("hint", ["deleted", "id_token", "urn:x"])
def test_unknown_hint_is_ignored(client, oauth_client, tokens, hint):
    # RFC 7662 §2.1: the hint only helps the search, which MUST go on over every type; an
    # unknown one is ignored as at revocation (RFC 7009 §2.2). Authlib answered 401
    # unsupported_token_type without a challenge to an authenticated client (schemathesis).
    response = introspect(client, oauth_client, {"token": tokens["access_token"],
                                                 "token_type_hint": hint})  # fmt: skip
    assert response.status_code == 200
    assert response.get_json()["active"] is True


def test_revoked_token_is_exactly_inactive(client, oauth_client, tokens):
    # RFC 7662 §2.2: an inactive token's response carries only "active": false (§4: no leaks).
    revoked = client.post(
        "/revoke",
        data={"token": tokens["access_token"]},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert revoked.status_code == 200
    response = introspect(client, oauth_client, {"token": tokens["access_token"]})
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


def test_expired_access_token_is_exactly_inactive(app, client, oauth_client, tokens):
    # RFC 7662 §2.2: an expired token is not active.
    set_expiry(app, tokens["access_token"], access_expires_at=utcnow() - timedelta(seconds=1))
    response = introspect(client, oauth_client, {"token": tokens["access_token"]})
    assert response.get_json() == {"active": False}


def test_expired_refresh_token_is_exactly_inactive(app, client, oauth_client, tokens):
    # RFC 7662 §2.2: the refresh token's own expiry counts.
    set_expiry(app, tokens["access_token"], refresh_expires_at=utcnow() - timedelta(seconds=1))
    response = introspect(client, oauth_client, {"token": tokens["refresh_token"]})
    assert response.get_json() == {"active": False}


def test_rotated_refresh_token_is_inactive(client, auth, oauth_client, tokens):
    # RFC 9700 §4.14.2: a rotated refresh token can no longer be used, so it is not active.
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    response = introspect(client, oauth_client, {"token": tokens["refresh_token"]})
    assert response.get_json() == {"active": False}


def test_unknown_token_is_exactly_inactive(client, oauth_client):
    # RFC 7662 §2.2: a token that does not exist is not active.
    response = introspect(client, oauth_client, {"token": "never-issued"})
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


def test_token_of_disabled_user_is_inactive(app, client, oauth_client, tokens):
    # RFC 7662 §2.2: active means currently usable; the owner's account is disabled.
    with app.app_context():
        session = db.session()
        row = session.scalar(
            select(Token).where(Token.access_token_hash == secret_hash(tokens["access_token"]))
        )
        row.user.disabled = True
        session.commit()
    response = introspect(client, oauth_client, {"token": tokens["access_token"]})
    assert response.get_json() == {"active": False}


def test_another_clients_token_is_inactive(client, factory, tokens):
    # RFC 7662 §2.2 / §4: a client not allowed to see the token learns only "active": false.
    other = factory.client(name="Other App")
    response = introspect(client, other, {"token": tokens["access_token"]})
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


def test_missing_token_is_invalid_request(client, oauth_client):
    # RFC 7662 §2.1: token is REQUIRED; RFC 6749 §5.2 invalid_request.
    response = introspect(client, oauth_client, {})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_introspection_response_is_not_cached(client, oauth_client, tokens):
    # RFC 7662 §2.2 / RFC 6749 §5.1: token metadata must not be cached.
    response = introspect(client, oauth_client, {"token": tokens["access_token"]})
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_introspection_accepts_post_only(client, oauth_client, tokens):
    # RFC 7662 §2.1: the protected resource calls the endpoint with HTTP POST.
    response = client.get(
        "/introspect?token=" + tokens["access_token"],
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert response.status_code == 405
