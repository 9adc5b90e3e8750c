"""The token endpoint (RFC 6749 §3.2, §4.1.3, §5.1, §5.2) and client authentication (§2.3)."""

from __future__ import annotations

import base64
import json

import pytest
from werkzeug.datastructures import MultiDict

from idp.models import Client, secret_hash

from ..helpers import allowed_methods, basic_auth

ERROR_KEYS = {"error", "error_description", "error_uri"}


def assert_error(response, error: str, status: int | None = 400) -> dict:
    """RFC 6749 §5.2: a JSON object with `error` (and optional description), never cached.

    status None: invalid_client without Basic, where §5.2 allows 400 or 401.
    """
    allowed = (400, 401) if status is None else (status,)
    assert response.status_code in allowed, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error, body
    assert set(body) <= ERROR_KEYS, body
    assert response.headers["Cache-Control"] == "no-store"
    return body


def code_request(auth, oauth_client) -> dict:
    code, verifier, _ = auth.get_code(oauth_client)
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": oauth_client.redirect_uri,
    }


# --- request format (RFC 6749 §3.2) ---


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_token_endpoint_accepts_post_only(client, oauth_client, method):
    # RFC 6749 §3.2: "The client MUST use the HTTP POST method"; RFC 9110 §15.5.6: 405 + Allow.
    response = client.open(
        "/token",
        method=method,
        query_string={"grant_type": "client_credentials"},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "invalid_request", 405)
    assert allowed_methods(response) == {"POST"}


def test_json_body_is_invalid_request(client, auth, user, oauth_client):
    # RFC 6749 §3.2 / Appendix B: parameters are sent application/x-www-form-urlencoded.
    auth.login()
    data = code_request(auth, oauth_client)
    response = client.post(
        "/token",
        data=json.dumps(data),
        content_type="application/json",
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "invalid_request")


def test_body_without_content_type_is_invalid_request(client, auth, user, oauth_client):
    # RFC 6749 §3.2: the body must be declared application/x-www-form-urlencoded.
    auth.login()
    data = code_request(auth, oauth_client)
    body = "&".join(f"{k}={v}" for k, v in data.items())
    response = client.post(
        "/token",
        data=body.encode(),
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert "Content-Type" not in response.request.headers
    assert_error(response, "invalid_request")


@pytest.mark.parametrize("repeated", ["grant_type", "code"])
def test_repeated_parameter_is_invalid_request(client, auth, user, oauth_client, repeated):
    # RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
    auth.login()
    data = MultiDict(code_request(auth, oauth_client))
    data.add(repeated, data[repeated])
    response = client.post(
        "/token", data=data, headers=basic_auth(oauth_client.client_id, oauth_client.client_secret)
    )
    body = assert_error(response, "invalid_request")
    assert repeated in body["error_description"]


# --- successful response (RFC 6749 §5.1) ---


def test_success_response_is_uncached_json_bearer_token(app, client, auth, user, oauth_client):
    # RFC 6749 §5.1: JSON body, Cache-Control: no-store, Pragma: no-cache; RFC 6750 §4: Bearer.
    auth.login()
    data = code_request(auth, oauth_client)
    response = auth.token(oauth_client, data)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["ACCESS_TOKEN_LIFETIME"]
    assert body["scope"] == "openid profile email"
    assert body["access_token"] and body["refresh_token"] and body["id_token"]


# --- error responses (RFC 6749 §5.2) ---


def test_unsupported_grant_type(client, oauth_client):
    # RFC 6749 §5.2: unsupported_grant_type for a grant the server does not know.
    response = client.post(
        "/token",
        data={"grant_type": "password", "username": "alice", "password": "x"},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "unsupported_grant_type")


def test_missing_code_is_invalid_request(client, oauth_client):
    # RFC 6749 §4.1.3: code is REQUIRED; §5.2: missing parameter -> invalid_request.
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "redirect_uri": oauth_client.redirect_uri},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "invalid_request")


def test_unknown_code_is_invalid_grant(client, oauth_client):
    # RFC 6749 §5.2: an invalid authorization code -> invalid_grant.
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": "not-a-code-this-server-issued",
            "redirect_uri": oauth_client.redirect_uri,
            "code_verifier": "v" * 43,
        },
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "invalid_grant")


def test_client_not_allowed_grant_type_is_unauthorized_client(client, oauth_client):
    # RFC 6749 §5.2: unauthorized_client when the client may not use this grant type
    # (the default test client has authorization_code and refresh_token only).
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert_error(response, "unauthorized_client")


def test_code_only_client_cannot_refresh(client, auth, user, factory):
    # RFC 6749 §5.2: unauthorized_client for the refresh_token grant when not registered.
    code_only = factory.client(grant_types=("authorization_code",))
    response = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "whatever"},
        headers=basic_auth(code_only.client_id, code_only.client_secret),
    )
    assert_error(response, "unauthorized_client")


@pytest.mark.parametrize("who", ["wrong secret", "unknown client"])
def test_basic_auth_failure_is_401_invalid_client_with_challenge(client, oauth_client, who):
    # RFC 6749 §5.2: a client that used the Authorization header gets 401 and a
    # WWW-Authenticate header for the scheme it used (Basic).
    client_id = oauth_client.client_id if who == "wrong secret" else "no-such-client"
    response = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=basic_auth(client_id, "not-the-secret"),
    )
    assert_error(response, "invalid_client", 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_no_client_authentication_is_invalid_client(client, oauth_client):
    # RFC 6749 §3.2.1 / §5.2: a request without any client authentication -> invalid_client.
    response = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert_error(response, "invalid_client", None)


# --- client authentication methods (RFC 6749 §2.3, RFC 7591 §2) ---


def test_client_secret_basic_form_urlencodes_id_and_secret(db_session, client, auth, user, factory):
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic; a secret with
    # reserved characters must therefore work when the client encodes it.
    registered = factory.client()
    secret = "s3cr:et/with+reserved%chars &=?é"
    session = db_session
    db_session.get(Client, registered.row.id).client_secret_hash = secret_hash(secret)
    session.commit()
    auth.login()
    code, verifier, _ = auth.get_code(registered)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": registered.redirect_uri,
    }
    response = client.post("/token", data=data, headers=basic_auth(registered.client_id, secret))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "Bearer"


def test_client_secret_basic_rejects_undecoded_secret(db_session, client, factory):
    # RFC 6749 §2.3.1: the server form-urldecodes the Basic credentials, so "%41" is "A".
    registered = factory.client(grant_types=("client_credentials",), scope="api.read")
    session = db_session
    db_session.get(Client, registered.row.id).client_secret_hash = secret_hash("%41")
    session.commit()
    raw = base64.b64encode(f"{registered.client_id}:%41".encode()).decode()
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + raw},
    )
    assert_error(response, "invalid_client", 401)
    ok = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(registered.client_id, "%41"),
    )
    assert ok.status_code == 200, ok.get_json()


def test_client_secret_post(client, auth, user, factory):
    # RFC 6749 §2.3.1: client_id and client_secret in the request body.
    post_client = factory.client(auth_method="client_secret_post")
    auth.login()
    data = code_request(auth, post_client)
    response = client.post(
        "/token",
        data={
            **data,
            "client_id": post_client.client_id,
            "client_secret": post_client.client_secret,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert "access_token" in response.get_json()


def test_client_secret_post_with_wrong_secret_is_invalid_client(client, factory):
    # RFC 6749 §5.2: failed client authentication -> invalid_client.
    post_client = factory.client(auth_method="client_secret_post")
    response = client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": post_client.client_id,
            "client_secret": "wrong",
        },
    )
    assert_error(response, "invalid_client", None)


def test_public_client_authenticates_with_none_and_pkce(client, auth, user, public_client):
    # RFC 6749 §2.1/§4.1.3: a public client sends client_id in the body; RFC 7636 protects it.
    auth.login()
    code, verifier, _ = auth.get_code(public_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": public_client.redirect_uri,
            "client_id": public_client.client_id,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"


def test_public_client_without_code_verifier_is_refused(client, auth, user, public_client):
    # RFC 7636 §4.5/§4.6 + RFC 9700 §2.1.1: the verifier is required for the PKCE-bound code.
    auth.login()
    code, _verifier, _ = auth.get_code(public_client)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": public_client.redirect_uri,
            "client_id": public_client.client_id,
        },
    )
    assert response.status_code == 400
    # RFC 7636 §4.5: code_verifier REQUIRED; RFC 6749 §5.2: a missing required parameter.
    assert response.get_json()["error"] == "invalid_request"


def test_confidential_client_cannot_authenticate_with_none(client, auth, user, oauth_client):
    # RFC 6749 §3.2.1: confidential clients MUST authenticate at the token endpoint.
    auth.login()
    data = code_request(auth, oauth_client)
    response = client.post("/token", data={**data, "client_id": oauth_client.client_id})
    assert_error(response, "invalid_client", None)
    # The code was not redeemed: with proper authentication it still works.
    ok = auth.token(oauth_client, data)
    assert ok.status_code == 200, ok.get_json()


def test_public_client_cannot_send_a_secret(client, auth, user, public_client):
    # RFC 6749 §2.1 / RFC 7591 §2: a client registered with "none" has no secret to use.
    auth.login()
    data = code_request(auth, public_client)
    response = client.post(
        "/token",
        data={**data, "client_id": public_client.client_id, "client_secret": "anything"},
    )
    assert_error(response, "invalid_client", None)
    basic = client.post("/token", data=data, headers=basic_auth(public_client.client_id, "x"))
    assert_error(basic, "invalid_client", 401)


def test_basic_client_cannot_use_client_secret_post(client, auth, user, oauth_client):
    # RFC 7591 §2: the server enforces the registered token_endpoint_auth_method.
    auth.login()
    data = code_request(auth, oauth_client)
    response = client.post(
        "/token",
        data={
            **data,
            "client_id": oauth_client.client_id,
            "client_secret": oauth_client.client_secret,
        },
    )
    assert_error(response, "invalid_client", None)


def test_post_client_cannot_use_client_secret_basic(client, auth, user, factory):
    # RFC 7591 §2: the server enforces the registered token_endpoint_auth_method.
    post_client = factory.client(auth_method="client_secret_post")
    auth.login()
    data = code_request(auth, post_client)
    response = client.post(
        "/token", data=data, headers=basic_auth(post_client.client_id, post_client.client_secret)
    )
    assert_error(response, "invalid_client", 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
