"""The UserInfo endpoint (OIDC Core §5.3) and its bearer token handling (RFC 6750)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Token, secret_hash, utcnow

from ..helpers import basic_auth


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def token_row(access_token: str) -> Token:
    return db.session().scalar(
        select(Token).where(Token.access_token_hash == secret_hash(access_token))
    )


@pytest.fixture
def access_token(auth, user, oauth_client) -> str:
    auth.login()
    return auth.tokens(oauth_client, scope="openid profile email")["access_token"]


def test_userinfo_get_with_bearer_header(client, user, access_token):
    # OIDC Core §5.3.1 (GET) with RFC 6750 §2.1 Authorization header; §5.3.2 response.
    response = client.get("/userinfo", headers=bearer(access_token))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    claims = response.get_json()
    assert claims["sub"] == user.sub
    assert claims["email"] == "alice@example.com"
    assert claims["name"] == "Alice Liddell"


def test_userinfo_post_with_bearer_header(client, user, access_token):
    # OIDC Core §5.3.1: the endpoint MUST support GET and POST.
    response = client.post("/userinfo", headers=bearer(access_token))
    assert response.status_code == 200
    assert response.get_json()["sub"] == user.sub


def test_userinfo_post_with_form_body_token(client, user, access_token):
    # RFC 6750 §2.2: access_token in a form-encoded POST body.
    response = client.post("/userinfo", data={"access_token": access_token})
    assert response.status_code == 200
    assert response.get_json()["sub"] == user.sub


def test_userinfo_token_in_query_string_is_not_accepted(client, access_token):
    # RFC 6750 §2.3 is optional and discouraged (RFC 9700 §4.3.2); this server does not use it.
    response = client.get("/userinfo?access_token=" + access_token)
    assert response.status_code == 401


def test_userinfo_response_is_not_cached(client, access_token):
    # OIDC Core §5.3.2 with RFC 6749 §5.1: responses carrying personal data are no-store.
    response = client.get("/userinfo", headers=bearer(access_token))
    assert "no-store" in response.headers["Cache-Control"]


def test_userinfo_email_scope_releases_only_email_claims(client, auth, user, oauth_client):
    # OIDC Core §5.4: email → email, email_verified; no profile claims.
    auth.login()
    token = auth.tokens(oauth_client, scope="openid email")["access_token"]
    claims = client.get("/userinfo", headers=bearer(token)).get_json()
    assert claims == {"sub": user.sub, "email": "alice@example.com", "email_verified": False}


def test_userinfo_profile_scope_releases_profile_claims_without_email(
    client, auth, user, oauth_client
):
    # OIDC Core §5.4: profile → name, preferred_username, updated_at...; no email without scope.
    auth.login()
    token = auth.tokens(oauth_client, scope="openid profile")["access_token"]
    claims = client.get("/userinfo", headers=bearer(token)).get_json()
    assert claims["sub"] == user.sub
    assert claims["name"] == "Alice Liddell"
    assert claims["preferred_username"] == "alice"
    assert isinstance(claims["updated_at"], int)
    assert "email" not in claims and "email_verified" not in claims


def test_userinfo_openid_scope_alone_releases_only_sub(client, auth, user, oauth_client):
    # OIDC Core §5.3.2: sub is always returned; §5.4: nothing else without a claim scope.
    auth.login()
    token = auth.tokens(oauth_client, scope="openid")["access_token"]
    assert client.get("/userinfo", headers=bearer(token)).get_json() == {"sub": user.sub}


def test_userinfo_without_token_is_401_without_error_code(client):
    # RFC 6750 §3.1: a request lacking authentication gets a challenge without an error code.
    response = client.get("/userinfo")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert "error=" not in challenge
    assert "error" not in (response.get_json() or {})


@pytest.mark.parametrize("token", ["not-a-real-token", "x" * 43])
def test_userinfo_unknown_token_is_invalid_token(client, token):
    # RFC 6750 §3.1: invalid_token, HTTP 401, in the WWW-Authenticate challenge.
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge


def test_userinfo_expired_token_is_invalid_token(app, client, access_token):
    # RFC 6750 §3.1: an expired token is invalid_token.
    with app.app_context():
        row = token_row(access_token)
        row.access_expires_at = utcnow() - timedelta(seconds=1)
        db.session().commit()
    response = client.get("/userinfo", headers=bearer(access_token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_userinfo_revoked_token_is_invalid_token(client, oauth_client, access_token):
    # RFC 7009 §2.2 + RFC 6750 §3.1: a revoked token is no longer accepted.
    revoked = client.post(
        "/revoke",
        data={"token": access_token},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert revoked.status_code == 200
    response = client.get("/userinfo", headers=bearer(access_token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_userinfo_refresh_token_is_not_an_access_token(client, auth, user, oauth_client):
    # RFC 6749 §1.5: refresh tokens are only for the token endpoint, never for resources.
    auth.login()
    tokens = auth.tokens(oauth_client)
    response = client.get("/userinfo", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_userinfo_token_without_openid_scope_is_insufficient_scope(
    client, auth, user, oauth_client
):
    # OIDC Core §5.3: UserInfo needs an access token from an OpenID request;
    # RFC 6750 §3.1: insufficient_scope, HTTP 403.
    auth.login()
    token = auth.tokens(oauth_client, scope="profile email")["access_token"]
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer") and 'error="insufficient_scope"' in challenge


def test_userinfo_token_in_header_and_body_is_invalid_request(client, access_token):
    # RFC 6750 §2: clients MUST NOT use more than one method; §3.1: that is invalid_request (400).
    response = client.post(
        "/userinfo", headers=bearer(access_token), data={"access_token": access_token}
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_userinfo_token_of_disabled_user_stops_working(app, client, user, access_token):
    # OIDC Core §5.3.3 / RFC 6750 §3.1: the token no longer represents a valid authorization.
    assert client.get("/userinfo", headers=bearer(access_token)).status_code == 200
    with app.app_context():
        row = token_row(access_token)
        row.user.disabled = True
        db.session().commit()
    response = client.get("/userinfo", headers=bearer(access_token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_userinfo_error_response_is_not_cached(client):
    # RFC 6750 §3 with RFC 6749 §5.1 no-store on token-related responses.
    response = client.get("/userinfo", headers=bearer("bogus"))
    assert "no-store" in response.headers["Cache-Control"]
