"""Authorization codes: randomness, hashed storage, bindings, lifetime and single use.

RFC 6749 §4.1.2 / §4.1.3 / §10.5, RFC 9700 §4.1-§4.5, OIDC Core §3.1.3.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from idp import db
from idp.models import AuditEvent, AuthorizationCode, Token, utcnow

from ..helpers import basic_auth, pkce_pair, query

ISSUER = "http://localhost"


def stored_codes(app) -> list[AuthorizationCode]:
    with app.app_context():
        return list(db.session().scalars(select(AuthorizationCode)))


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def assert_invalid_grant(response) -> None:
    # RFC 6749 §5.2: 400 with error=invalid_grant, never tokens.
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_grant"
    assert "access_token" not in body and "id_token" not in body
    assert response.headers["Cache-Control"] == "no-store"


def introspect(client, rp, token: str) -> dict:
    response = client.post(
        "/introspect", data={"token": token}, headers=basic_auth(rp.client_id, rp.client_secret)
    )
    assert response.status_code == 200
    return response.get_json()


def userinfo_status(client, access_token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": "Bearer " + access_token}).status_code


def id_token_claims(client, id_token: str) -> dict:
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(id_token, jwks).claims


# --- what a code is --------------------------------------------------------------------


def test_code_has_at_least_128_bits_of_randomness(auth, user, oauth_client):
    # RFC 6749 §10.10 and RFC 9700 §4.5: codes must be unguessable (>= 128 bits).
    auth.login()
    codes = [auth.get_code(oauth_client)[0] for _ in range(3)]
    for code in codes:
        alphabet = 62 if code.isalnum() else 64
        assert all(c.isalnum() or c in "-_" for c in code), code
        assert len(code) * math.log2(alphabet) >= 128, code
        assert len(set(code)) > 10  # not a counter or a padded constant
    assert len(set(codes)) == len(codes)


def test_code_is_stored_only_as_its_sha256_hash(app, auth, user, oauth_client):
    # RFC 6749 §10.5 / RFC 9700 §4.5: a database leak must not reveal usable codes.
    auth.login()
    code, _, params = auth.get_code(oauth_client)
    [row] = stored_codes(app)
    assert row.code_hash == hashlib.sha256(code.encode()).hexdigest()
    columns = [str(getattr(row, c.key)) for c in AuthorizationCode.__table__.columns]
    assert not any(code in value for value in columns)
    assert row.client_id == oauth_client.client_id
    assert row.redirect_uri == params["redirect_uri"]
    assert row.nonce == params["nonce"]
    assert row.used_at is None


def test_issuing_a_code_is_audited(app, auth, user, oauth_client):
    # RFC 9700 §4.3 (auditability of the authorization): who got a code for which client.
    auth.login()
    auth.get_code(oauth_client)
    [event] = events(app, "code.issued")
    assert event.actor == user.sub and event.target == oauth_client.client_id


# --- bindings --------------------------------------------------------------------------


def test_code_is_bound_to_the_client(app, client, auth, user, oauth_client, factory):
    # RFC 6749 §4.1.3: ensure the code was issued to the authenticated confidential client.
    other = factory.client(name="Other App")
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    assert_invalid_grant(auth.exchange(other, code, verifier, redirect_uri=other.redirect_uri))
    # The failed attempt by the other client does not burn the code for its owner.
    response = auth.exchange(oauth_client, code, verifier)
    assert response.status_code == 200, response.get_json()


def test_code_of_confidential_client_cannot_be_redeemed_as_public(
    auth, user, oauth_client, factory
):
    # RFC 6749 §4.1.3: a confidential client's code requires its authentication.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    response = auth.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": oauth_client.client_id,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": oauth_client.redirect_uri,
        },
    )
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


def test_code_is_bound_to_the_redirect_uri(auth, user, factory):
    # RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request.
    rp = factory.client(redirect_uris=("https://rp.example/cb", "https://rp.example/other"))
    auth.login()
    code, verifier, _ = auth.get_code(rp)
    assert_invalid_grant(auth.exchange(rp, code, verifier, redirect_uri="https://rp.example/other"))
    assert_invalid_grant(auth.exchange(rp, code, verifier, redirect_uri="https://rp.example/cb/"))
    response = auth.exchange(rp, code, verifier, redirect_uri="https://rp.example/cb")
    assert response.status_code == 200, response.get_json()


def test_a_missing_redirect_uri_at_the_token_endpoint_is_invalid_request(auth, user, oauth_client):
    # RFC 6749 §4.1.3: redirect_uri is REQUIRED when the authorization request had one;
    # §5.2 invalid_request: "The request is missing a required parameter" (invalid_grant is
    # for one that "does not match").
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    response = auth.token(
        oauth_client,
        {"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    # Nothing was used up: the complete request still redeems the code.
    assert auth.exchange(oauth_client, code, verifier).status_code == 200


def test_code_is_bound_to_the_pkce_challenge(auth, user, public_client):
    # RFC 7636 §4.6: only the verifier of this code's challenge redeems it.
    auth.login()
    code, _, _ = auth.get_code(public_client)
    _, other_code_verifier, _ = auth.get_code(public_client)
    assert_invalid_grant(auth.exchange(public_client, code, other_code_verifier))


def test_nonce_is_carried_into_the_id_token(client, auth, user, oauth_client):
    # OIDC Core §3.1.3.6 / §2: the ID token's nonce is the one of the authentication request.
    auth.login()
    code, verifier, params = auth.get_code(oauth_client, nonce="n-0S6_WzA2Mj")
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    claims = id_token_claims(client, tokens["id_token"])
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["iss"] == ISSUER and claims["aud"] == oauth_client.client_id


def test_a_nonce_a_client_already_used_is_refused_as_a_replay(auth, user, oauth_client, factory):
    # OIDC Core §15.5.2: the nonce binds an ID token to one authentication request, so a
    # request carrying a nonce of an earlier code of the same client is a replay: an error
    # goes back to the client (RFC 6749 §4.1.2.1), no code. Another client's nonce is its own.
    auth.login()
    auth.get_code(oauth_client, nonce="n-once")
    params, _ = auth.code_flow_params(oauth_client, nonce="n-once")
    answer = query(auth.authorize(params).headers["Location"])
    assert answer["error"] == "invalid_request" and "code" not in answer
    assert answer["state"] == params["state"]
    other = factory.client(name="Other App")
    auth.get_code(other, nonce="n-once")


def test_a_long_nonce_is_kept_and_checked_like_any_other(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1 sets no length on nonce: a 10,000-character one is carried into the
    # ID token, and its replay is refused (the nonce check's index takes any length).
    nonce = secrets.token_urlsafe(7500)[:10_000]
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client, nonce=nonce)
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    assert id_token_claims(client, tokens["id_token"])["nonce"] == nonce
    params, _ = auth.code_flow_params(oauth_client, nonce=nonce)
    assert query(auth.authorize(params).headers["Location"])["error"] == "invalid_request"


def test_no_nonce_means_no_nonce_claim(client, auth, user, oauth_client):
    # OIDC Core §2: nonce is present only if it was sent in the request.
    auth.login()
    params, verifier = auth.code_flow_params(oauth_client)
    del params["nonce"]
    code = query(auth.authorize(params).headers["Location"])["code"]
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    assert "nonce" not in id_token_claims(client, tokens["id_token"])


def test_code_carries_the_granted_scope(auth, user, oauth_client):
    # RFC 6749 §4.1.4 / §5.1: the tokens carry the scope the user approved for this code.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client, scope="openid email")
    body = auth.exchange(oauth_client, code, verifier).get_json()
    assert set(body["scope"].split()) == {"openid", "email"}


# --- lifetime --------------------------------------------------------------------------


def test_default_code_lifetime_is_60_seconds(app, auth, user, oauth_client):
    # RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is RECOMMENDED; this server uses 60 s.
    auth.login()
    auth.get_code(oauth_client)
    [row] = stored_codes(app)
    assert abs((row.expires_at - row.created_at).total_seconds() - 60) < 5


@pytest.mark.config(AUTHORIZATION_CODE_LIFETIME=300)
def test_code_lifetime_follows_configuration(app, auth, user, oauth_client):
    # RFC 6749 §4.1.2: the lifetime is the server's choice (AUTHORIZATION_CODE_LIFETIME).
    auth.login()
    auth.get_code(oauth_client)
    [row] = stored_codes(app)
    assert abs((row.expires_at - row.created_at).total_seconds() - 300) < 5


def test_expired_code_is_invalid_grant(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2 (codes MUST expire shortly) and §5.2 (expired grant -> invalid_grant).
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    with app.app_context():
        session = db.session()
        session.execute(
            update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    assert_invalid_grant(auth.exchange(oauth_client, code, verifier))
    with app.app_context():
        assert db.session().scalar(select(Token.id)) is None


def test_unknown_code_is_invalid_grant(auth, user, oauth_client):
    # RFC 6749 §5.2: an invalid authorization code -> invalid_grant.
    assert_invalid_grant(auth.exchange(oauth_client, secrets.token_urlsafe(36), pkce_pair()[0]))


# --- single use ------------------------------------------------------------------------


def test_code_is_single_use_and_replay_revokes_its_tokens(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2: a code used twice MUST be refused and SHOULD revoke the tokens issued
    # from it; RFC 9700 §4.5.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    first = auth.exchange(oauth_client, code, verifier)
    assert first.status_code == 200, first.get_json()
    tokens = first.get_json()
    assert userinfo_status(client, tokens["access_token"]) == 200
    assert introspect(client, oauth_client, tokens["access_token"])["active"] is True

    assert_invalid_grant(auth.exchange(oauth_client, code, verifier))

    assert userinfo_status(client, tokens["access_token"]) == 401
    assert introspect(client, oauth_client, tokens["access_token"]) == {"active": False}
    assert introspect(client, oauth_client, tokens["refresh_token"]) == {"active": False}
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert_invalid_grant(refreshed)
    [event] = events(app, "code.replayed")
    assert event.target == oauth_client.client_id
    with app.app_context():
        rows = db.session().scalars(select(Token)).all()
        assert rows and all(row.revoked_at is not None for row in rows)
        [row] = db.session().scalars(select(AuthorizationCode)).all()
        assert row.used_at is not None


def test_replay_revokes_tokens_refreshed_from_the_code(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2: "all tokens previously issued based on that authorization code",
    # which includes those obtained by refreshing them.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).get_json()
    assert userinfo_status(client, refreshed["access_token"]) == 200

    assert_invalid_grant(auth.exchange(oauth_client, code, verifier))

    assert userinfo_status(client, refreshed["access_token"]) == 401
    assert introspect(client, oauth_client, refreshed["refresh_token"]) == {"active": False}


def test_replay_leaves_other_grants_alone(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2: only tokens based on the replayed code are revoked.
    auth.login()
    other_tokens = auth.tokens(oauth_client)
    code, verifier, _ = auth.get_code(oauth_client)
    auth.exchange(oauth_client, code, verifier)
    assert_invalid_grant(auth.exchange(oauth_client, code, verifier))
    assert userinfo_status(client, other_tokens["access_token"]) == 200


def test_replayed_code_at_another_client_does_not_revoke(
    app, client, auth, user, oauth_client, factory
):
    # RFC 6749 §4.1.3: a client that never owned the code cannot trigger anything with it.
    other = factory.client(name="Other App")
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    assert_invalid_grant(auth.exchange(other, code, verifier, redirect_uri=other.redirect_uri))
    assert userinfo_status(client, tokens["access_token"]) == 200
    assert events(app, "code.replayed") == []
