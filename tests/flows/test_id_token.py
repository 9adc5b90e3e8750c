"""ID tokens: signature against the published JWKS and the claims of OIDC Core §2/§3.1.3.6."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from idp import db
from idp.models import User

from ..helpers import query

ISSUER = "http://localhost"


def jwks(client) -> dict:
    return client.get("/jwks.json").get_json()


def verify(client, id_token: str):
    """Decode with the keys the server publishes; a bad signature raises."""
    return jwt.decode(id_token, KeySet.import_key_set(jwks(client)))


def half_hash(value: str) -> str:
    # OIDC Core §3.1.3.6: left-most half of the SHA-256 hash, base64url without padding.
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_id_token_verifies_against_published_jwks_with_rs256_by_default(
    client, auth, user, oauth_client
):
    # OIDC Core §10.1: signed with a key published at jwks_uri; RS256 is the default (§15.1).
    auth.login()
    tokens = auth.tokens(oauth_client)
    token = verify(client, tokens["id_token"])
    assert token.header["alg"] == "RS256"
    published = {k["kid"]: k for k in jwks(client)["keys"]}
    assert token.header["kid"] in published
    assert published[token.header["kid"]]["kty"] == "RSA"


def test_id_token_signature_tampering_is_detected(client, auth, user, oauth_client):
    # OIDC Core §3.1.3.7 step 6: the client MUST validate the signature.
    auth.login()
    header, payload, signature = auth.tokens(oauth_client)["id_token"].split(".")
    forged = base64.urlsafe_b64decode(payload + "==").replace(b'"alice', b'"mallory')
    forged_payload = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        verify(client, f"{header}.{forged_payload}.{signature}")


def test_id_token_has_required_claims(client, auth, user, oauth_client):
    # OIDC Core §2 (iss, sub, aud, exp, iat, auth_time, nonce) and §3.1.3.7 validation rules.
    started = int(time.time())
    auth.login()
    signed_in = int(time.time())
    code, verifier, params = auth.get_code(oauth_client)
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    claims = verify(client, tokens["id_token"]).claims

    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        sub={"essential": True, "value": user.sub},
        aud={"essential": True, "value": oauth_client.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": params["nonce"]},
    )
    registry.validate(claims)
    assert claims["aud"] == oauth_client.client_id
    assert claims["azp"] == oauth_client.client_id
    assert claims["exp"] > claims["iat"]
    assert started <= claims["iat"] <= int(time.time())
    # auth_time is the moment the user signed in, not the moment the token was minted.
    assert started <= claims["auth_time"] <= signed_in
    assert claims["amr"] == ["pwd"]


@pytest.mark.config(ID_TOKEN_LIFETIME=120)
def test_id_token_lifetime_follows_config(client, auth, user, oauth_client):
    # OIDC Core §2: exp is the expiration time; it comes from ID_TOKEN_LIFETIME.
    auth.login()
    claims = verify(client, auth.tokens(oauth_client)["id_token"]).claims
    assert claims["exp"] - claims["iat"] == 120


def test_id_token_at_hash_is_left_half_of_access_token_sha256(client, auth, user, oauth_client):
    # OIDC Core §3.1.3.6 / §3.2.2.9: at_hash binds the ID token to the access token.
    auth.login()
    tokens = auth.tokens(oauth_client)
    claims = verify(client, tokens["id_token"]).claims
    assert claims["at_hash"] == half_hash(tokens["access_token"])


def test_id_token_without_nonce_in_request_has_no_nonce(client, auth, user, oauth_client):
    # OIDC Core §2: nonce is present only if the authentication request carried one.
    auth.login()
    params, verifier = auth.code_flow_params(oauth_client)
    del params["nonce"]
    response = auth.authorize(params)
    code = query(response.headers["Location"])["code"]
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    assert "nonce" not in verify(client, tokens["id_token"]).claims


def test_id_token_es256_for_client_registered_with_es256(client, auth, user, factory):
    # OIDC Dynamic Client Registration §2 id_token_signed_response_alg; OIDC Core §3.1.3.7.
    es_client = factory.client(name="EC App", id_token_alg="ES256")
    auth.login()
    tokens = auth.tokens(es_client)
    token = verify(client, tokens["id_token"])
    assert token.header["alg"] == "ES256"
    published = {k["kid"]: k for k in jwks(client)["keys"]}
    assert published[token.header["kid"]]["kty"] == "EC"
    assert published[token.header["kid"]]["crv"] == "P-256"
    assert token.claims["aud"] == es_client.client_id
    # ES256 also uses SHA-256 for at_hash (OIDC Core §3.1.3.6).
    assert token.claims["at_hash"] == half_hash(tokens["access_token"])


def test_sub_is_opaque_and_stable_across_sign_ins(app, client, auth, user, oauth_client):
    # OIDC Core §2 / §8: sub is locally unique, never reassigned, and need not reveal the user.
    assert auth.login().status_code == 302
    first = verify(client, auth.tokens(oauth_client)["id_token"]).claims["sub"]
    auth.logout()
    assert auth.login().status_code == 302
    second = verify(client, auth.tokens(oauth_client)["id_token"]).claims["sub"]
    assert first == second
    with app.app_context():
        row = db.session().get(User, user.id)
        assert first == row.sub
        assert first not in (row.username, row.email, str(row.id))
    assert "alice" not in first.lower()


def test_sub_differs_between_users(client, auth, user, factory, oauth_client):
    # OIDC Core §2: sub identifies one end-user at the issuer.
    factory.user(username="bob", email="bob@example.com")
    assert auth.login("bob").status_code == 302
    bob_sub = verify(client, auth.tokens(oauth_client)["id_token"]).claims["sub"]
    assert auth.login("alice").status_code == 302
    alice_sub = verify(client, auth.tokens(oauth_client)["id_token"]).claims["sub"]
    assert bob_sub != alice_sub


def test_id_token_claims_follow_scope(client, auth, user, oauth_client):
    # OIDC Core §5.4: profile and email claims are released only for their scopes.
    auth.login()
    minimal = verify(client, auth.tokens(oauth_client, scope="openid")["id_token"]).claims
    for claim in ("name", "preferred_username", "email", "email_verified"):
        assert claim not in minimal
    full = verify(
        client, auth.tokens(oauth_client, scope="openid profile email")["id_token"]
    ).claims
    assert full["name"] == "Alice Liddell"
    assert full["preferred_username"] == "alice"
    assert full["email"] == "alice@example.com"
    assert full["email_verified"] is False
    email_only = verify(client, auth.tokens(oauth_client, scope="openid email")["id_token"]).claims
    assert email_only["email"] == "alice@example.com"
    assert "name" not in email_only and "preferred_username" not in email_only


def test_refreshed_id_token_keeps_sub_aud_and_auth_time(client, auth, user, oauth_client):
    # OIDC Core §12.2: same iss, sub, aud; auth_time of the original authentication; no nonce.
    auth.login()
    tokens = auth.tokens(oauth_client)
    original = verify(client, tokens["id_token"]).claims
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).get_json()
    claims = verify(client, refreshed["id_token"]).claims
    for name in ("iss", "sub", "aud", "auth_time"):
        assert claims[name] == original[name]
    assert "nonce" not in claims
    assert claims["at_hash"] == half_hash(refreshed["access_token"])
