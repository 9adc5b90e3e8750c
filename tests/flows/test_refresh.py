"""Refresh tokens (RFC 6749 §1.5, §6), rotation and reuse detection (RFC 9700 §4.14.2)."""

from __future__ import annotations

from datetime import timedelta

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.models import AuditEvent, Token, User, secret_hash, utcnow


def refresh(auth, registered, refresh_token, **extra):
    return auth.token(
        registered, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    )


def userinfo_status(client, access_token) -> int:
    return client.get("/userinfo", headers={"Authorization": "Bearer " + access_token}).status_code


def stored(db_session, refresh_token: str) -> Token:
    session = db_session
    session.expire_all()
    return session.scalar(
        select(Token).where(Token.refresh_token_hash == secret_hash(refresh_token))
    )


def id_token_claims(client, id_token: str) -> dict:
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(id_token, jwks).claims


def assert_invalid_grant(response):
    # RFC 6749 §5.2: invalid, expired, revoked or foreign refresh token -> invalid_grant.
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


def test_refresh_token_issued_to_client_with_refresh_grant(auth, user, oauth_client):
    # RFC 6749 §4.1.4 / §1.5: the refresh token is issued to a client allowed that grant.
    auth.login()
    tokens = auth.tokens(oauth_client)
    assert tokens["refresh_token"]
    assert tokens["refresh_token"] != tokens["access_token"]


def test_no_refresh_token_for_client_without_refresh_grant(auth, user, factory):
    # RFC 6749 §5.1: refresh_token is OPTIONAL; not issued when the client may not refresh.
    code_only = factory.client(grant_types=("authorization_code",))
    auth.login()
    tokens = auth.tokens(code_only)
    assert "refresh_token" not in tokens
    assert tokens["access_token"]


def test_refresh_rotates_the_refresh_token_on_every_use(
    db_session, client, auth, user, oauth_client
):
    # RFC 9700 §4.14.2: refresh token rotation; each use returns a new refresh token.
    auth.login()
    tokens = auth.tokens(oauth_client)
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        response = refresh(auth, oauth_client, current)
        assert response.status_code == 200, response.get_json()
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["token_type"] == "Bearer"
        assert body["refresh_token"] not in seen
        assert userinfo_status(client, body["access_token"]) == 200
        seen.add(body["refresh_token"])
        current = body["refresh_token"]
    # Every previous refresh token has been consumed.
    for old in seen - {current}:
        assert stored(db_session, old).refresh_used_at is not None
    assert stored(db_session, current).refresh_used_at is None


def test_rotated_refresh_token_no_longer_works(auth, user, oauth_client):
    # RFC 9700 §4.14.2: the previous refresh token is invalidated once the new one is issued.
    auth.login()
    old = auth.tokens(oauth_client)["refresh_token"]
    assert refresh(auth, oauth_client, old).status_code == 200
    assert_invalid_grant(refresh(auth, oauth_client, old))


def test_reusing_rotated_refresh_token_revokes_the_whole_family(
    db_session, client, auth, user, oauth_client
):
    # RFC 9700 §4.14.2: reuse of an invalidated refresh token means one of two parties is an
    # attacker; the server revokes the active refresh token and its access tokens.
    auth.login()
    first = auth.tokens(oauth_client)
    second = refresh(auth, oauth_client, first["refresh_token"]).get_json()
    newest = refresh(auth, oauth_client, second["refresh_token"]).get_json()
    assert userinfo_status(client, newest["access_token"]) == 200

    assert_invalid_grant(refresh(auth, oauth_client, first["refresh_token"]))

    # The attacker's (or victim's) newest tokens are dead too.
    assert userinfo_status(client, newest["access_token"]) == 401
    assert userinfo_status(client, second["access_token"]) == 401
    assert_invalid_grant(refresh(auth, oauth_client, newest["refresh_token"]))
    family = stored(db_session, first["refresh_token"]).family_id
    rows = db_session.scalars(select(Token).where(Token.family_id == family)).all()
    assert len(rows) == 3 and all(row.revoked_at is not None for row in rows)
    events = db_session.scalars(
        select(AuditEvent).where(AuditEvent.event == "token.family_revoked")
    ).all()
    assert [event.target for event in events] == [family]


def test_reuse_does_not_revoke_other_families(client, auth, user, oauth_client):
    # RFC 9700 §4.14.2: revocation is limited to the tokens of the compromised grant.
    auth.login()
    victim = auth.tokens(oauth_client)
    other = auth.tokens(oauth_client)
    refresh(auth, oauth_client, victim["refresh_token"])
    assert_invalid_grant(refresh(auth, oauth_client, victim["refresh_token"]))
    assert userinfo_status(client, other["access_token"]) == 200
    assert refresh(auth, oauth_client, other["refresh_token"]).status_code == 200


def test_refresh_token_is_bound_to_its_client(auth, user, oauth_client, factory):
    # RFC 6749 §6: the server MUST verify the refresh token was issued to this client;
    # §5.2: otherwise invalid_grant.
    other = factory.client(name="Other App")
    auth.login()
    tokens = auth.tokens(oauth_client)
    assert_invalid_grant(refresh(auth, other, tokens["refresh_token"]))


def test_refresh_can_narrow_the_scope(client, auth, user, oauth_client):
    # RFC 6749 §6: the client may request a scope within the originally granted one.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile email")
    response = refresh(auth, oauth_client, tokens["refresh_token"], scope="openid email")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["scope"] == "openid email"
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200
    assert "email" in info.get_json() and "name" not in info.get_json()


def test_refresh_with_wider_scope_is_invalid_scope(auth, user, oauth_client):
    # RFC 6749 §6: "MUST NOT include any scope not originally granted"; §5.2: invalid_scope.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile")
    response = refresh(auth, oauth_client, tokens["refresh_token"], scope="openid profile email")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    # The refused request did not consume the refresh token.
    assert refresh(auth, oauth_client, tokens["refresh_token"]).status_code == 200


def test_refresh_after_narrowing_can_return_the_full_original_scope(auth, user, oauth_client):
    # RFC 6749 §6: a narrower access token does not shrink the grant the refresh token carries;
    # an omitted scope "is treated as equal to the scope originally granted".
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile email")
    narrow = refresh(auth, oauth_client, tokens["refresh_token"], scope="openid").get_json()
    assert narrow["scope"] == "openid"
    full = refresh(auth, oauth_client, narrow["refresh_token"])
    assert full.status_code == 200, full.get_json()
    assert set(full.get_json()["scope"].split()) == {"openid", "profile", "email"}
    explicit = refresh(
        auth, oauth_client, full.get_json()["refresh_token"], scope="openid profile email"
    )
    assert explicit.status_code == 200, explicit.get_json()


def test_expired_refresh_token_is_invalid_grant(db_session, auth, user, oauth_client):
    # RFC 6749 §5.2: an expired refresh token -> invalid_grant.
    auth.login()
    tokens = auth.tokens(oauth_client)
    row = stored(db_session, tokens["refresh_token"])
    row.refresh_expires_at = utcnow() - timedelta(seconds=1)
    db_session.commit()
    assert_invalid_grant(refresh(auth, oauth_client, tokens["refresh_token"]))


def test_refresh_returns_id_token_with_original_auth_time_and_no_nonce(
    db_session, client, auth, user, oauth_client
):
    # OIDC Core §12.2: the refreshed ID token keeps iss, sub, aud and auth_time of the
    # original and SHOULD NOT carry a nonce.
    auth.login()
    tokens = auth.tokens(oauth_client)
    original = id_token_claims(client, tokens["id_token"])
    assert original["nonce"]
    # Make the original sign-in time distinguishable from "now".
    row = stored(db_session, tokens["refresh_token"])
    row.auth_time = original["auth_time"] - 1000
    db_session.commit()
    response = refresh(auth, oauth_client, tokens["refresh_token"])
    assert response.status_code == 200, response.get_json()
    claims = id_token_claims(client, response.get_json()["id_token"])
    assert claims["auth_time"] == original["auth_time"] - 1000
    assert "nonce" not in claims
    assert claims["sub"] == original["sub"] == user.sub
    assert claims["aud"] == original["aud"]
    assert claims["iss"] == original["iss"]


def test_disabled_users_refresh_token_stops_working(db_session, auth, user, oauth_client):
    # RFC 6749 §5.2: the grant is no longer valid once its resource owner is disabled.
    auth.login()
    tokens = auth.tokens(oauth_client)
    db_session.get(User, user.id).disabled = True
    db_session.commit()
    assert_invalid_grant(refresh(auth, oauth_client, tokens["refresh_token"]))
