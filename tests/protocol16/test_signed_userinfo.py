"""Signed UserInfo responses (OIDC Core §5.3.2) for clients with userinfo_signed_response_alg."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ..conftest import ISSUER
from .conftest import configure


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def verify(client, value: str, alg: str):
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(value, keys, algorithms=[alg])


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_userinfo_is_a_jws_with_iss_and_aud(app, client, auth, user, oauth_client, alg):
    configure(app, oauth_client.client_id, userinfo_signed_response_alg=alg)
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid email")
    response = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    # §5.3.2: "the UserInfo Response MUST be ... a JWT ... Content-Type application/jwt".
    assert response.mimetype == "application/jwt"
    assert response.headers["Cache-Control"] == "no-store"
    token = verify(client, response.get_data(as_text=True), alg)
    assert token.header["alg"] == alg
    # "SHOULD contain the Claims iss (the OP's Issuer) and aud (the RP's Client ID)".
    assert token.claims["iss"] == ISSUER
    assert token.claims["aud"] == oauth_client.client_id
    assert token.claims["sub"] == user.sub
    assert token.claims["email"] == "alice@example.com"
    # The sub matches the ID token's (§5.3.2: MUST be verified by the RP).
    id_token = verify(client, tokens["id_token"], "RS256")
    assert id_token.claims["sub"] == token.claims["sub"]


def test_unsigned_by_default(client, auth, user, oauth_client):
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    response = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.mimetype == "application/json"
    assert "iss" not in response.get_json()


def test_a_signed_userinfo_is_not_an_id_token_hint(app, client, auth, user, oauth_client):
    # RFC 8725 §3.11 confusion: same keys, same typ, but no exp: refused as id_token_hint.
    configure(app, oauth_client.client_id, userinfo_signed_response_alg="RS256")
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    signed = client.get("/userinfo", headers=bearer(tokens["access_token"])).get_data(as_text=True)
    response = client.get("/end_session", query_string={"id_token_hint": signed})
    assert response.status_code == 400
    ok = client.get("/end_session", query_string={"id_token_hint": tokens["id_token"]})
    assert ok.status_code == 200


def test_discovery_lists_userinfo_signing_algorithms(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["userinfo_signing_alg_values_supported"] == ["RS256", "ES256"]


@pytest.mark.config(REGISTRATION="open")
def test_registration_accepts_and_checks_the_algorithm(client):
    # OIDC Registration §2: userinfo_signed_response_alg among the advertised values.
    body = {"redirect_uris": ["https://rp.example/cb"], "userinfo_signed_response_alg": "ES256"}
    response = client.post("/register", json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["userinfo_signed_response_alg"] == "ES256"
    for alg in ("none", "HS256"):
        body["userinfo_signed_response_alg"] = alg
        response = client.post("/register", json=body)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_client_metadata"
        assert "userinfo_signed_response_alg" in response.get_json()["error_description"]
