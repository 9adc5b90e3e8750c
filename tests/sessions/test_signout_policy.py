"""Sign-out policy: what a session issued stops working when the session ends.

Tokens issued in the session are revoked at logout, except refresh tokens granted with
offline_access (OIDC Core §11) while SIGN_OUT_KEEPS_OFFLINE_ACCESS is on.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.models import AuditEvent, Token

from ..helpers import Auth, basic_auth
from .conftest import find


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def introspect(client, rp, token: str) -> dict:
    headers = basic_auth(rp.client_id, rp.client_secret)
    return client.post("/introspect", data={"token": token}, headers=headers).get_json()


def refresh(auth, rp, token: str):
    return auth.token(rp, {"grant_type": "refresh_token", "refresh_token": token})


def test_tokens_of_the_session_are_revoked_at_logout(app, client, auth, user, oauth_client):
    # RFC 7009 §2.2 semantics at sign-out: neither the access nor the refresh token works.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile")
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    auth.logout()
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert introspect(client, oauth_client, tokens["access_token"]) == {"active": False}
    assert refresh(auth, oauth_client, tokens["refresh_token"]).get_json()["error"] == (
        "invalid_grant"
    )
    (row,) = find(app, select(Token))
    assert row.revoked_at is not None
    (event,) = find(app, select(AuditEvent).where(AuditEvent.event == "session.ended"))
    assert event.target == user.sub and event.details["tokens_revoked"] == 1


def test_offline_access_refresh_token_survives_logout_but_its_access_token_ends(
    app, client, auth, user, oauth_client
):
    # OIDC Core §11: offline access outlives the browser session; the access token issued
    # with it does not.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid offline_access")
    auth.logout()
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = refresh(auth, oauth_client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    new_access = refreshed.get_json()["access_token"]
    assert client.get("/userinfo", headers=bearer(new_access)).status_code == 200


@pytest.mark.config(SIGN_OUT_KEEPS_OFFLINE_ACCESS=False)
def test_offline_access_is_revoked_too_when_configured(app, client, auth, user, oauth_client):
    # The policy is configuration: with it off, sign-out revokes offline refresh tokens.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid offline_access")
    auth.logout()
    assert refresh(auth, oauth_client, tokens["refresh_token"]).status_code == 400


def test_tokens_of_other_sessions_and_clients_grants_are_untouched(
    app, client, auth, user, oauth_client
):
    # Only what this session issued ends: another browser's tokens keep working.
    other = Auth(app.test_client())
    other.login()
    theirs = other.tokens(oauth_client, scope="openid")
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    auth.logout()
    assert client.get("/userinfo", headers=bearer(theirs["access_token"])).status_code == 200


def test_code_issued_in_the_session_cannot_be_redeemed_after_logout(
    app, client, auth, user, oauth_client
):
    # RFC 6749 §4.1.2 with the sign-out policy: a code not yet redeemed dies with the session.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    auth.logout()
    response = auth.exchange(oauth_client, code, verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
