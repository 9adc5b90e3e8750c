"""Token revocation (RFC 7009) at /revoke."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Token, secret_hash

from ..helpers import basic_auth


@pytest.fixture
def tokens(auth, user, oauth_client) -> dict:
    auth.login()
    return auth.tokens(oauth_client, scope="openid profile offline_access")


def revoke(client, rp, data: dict):
    return client.post("/revoke", data=data, headers=basic_auth(rp.client_id, rp.client_secret))


def userinfo_status(client, access_token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": "Bearer " + access_token}).status_code


def refresh(auth, rp, refresh_token: str):
    return auth.token(rp, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def row_for(app, access_token: str) -> Token:
    with app.app_context():
        return db.session().scalar(
            select(Token).where(Token.access_token_hash == secret_hash(access_token))
        )


def test_revoking_access_token_stops_it_working(app, client, oauth_client, tokens):
    # RFC 7009 §2.1-2.2: the token is invalidated and the server answers 200.
    assert userinfo_status(client, tokens["access_token"]) == 200
    response = revoke(client, oauth_client, {"token": tokens["access_token"]})
    assert response.status_code == 200
    assert userinfo_status(client, tokens["access_token"]) == 401
    assert row_for(app, tokens["access_token"]).revoked_at is not None
    [event] = events(app, "token.revoked")
    assert event.target == oauth_client.client_id


def test_revoking_refresh_token_revokes_its_family(app, client, auth, oauth_client, tokens):
    # RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the access tokens of
    # the same grant.
    rotated = refresh(auth, oauth_client, tokens["refresh_token"]).get_json()
    response = revoke(
        client,
        oauth_client,
        {"token": rotated["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert response.status_code == 200
    assert refresh(auth, oauth_client, rotated["refresh_token"]).get_json()["error"] == (
        "invalid_grant"
    )
    assert userinfo_status(client, rotated["access_token"]) == 401
    assert userinfo_status(client, tokens["access_token"]) == 401
    [event] = events(app, "token.family_revoked")
    assert event.target == row_for(app, tokens["access_token"]).family_id


def test_revoking_unknown_token_answers_200(client, oauth_client, tokens):
    # RFC 7009 §2.2: invalid tokens do not cause an error response.
    response = revoke(client, oauth_client, {"token": "no-such-token"})
    assert response.status_code == 200
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_wrong_token_type_hint_still_revokes(client, oauth_client, tokens):
    # RFC 7009 §2.1: if the hint is wrong the server MUST extend its search.
    response = revoke(
        client, oauth_client, {"token": tokens["access_token"], "token_type_hint": "refresh_token"}
    )
    assert response.status_code == 200
    assert userinfo_status(client, tokens["access_token"]) == 401


def test_wrong_hint_on_refresh_token_still_revokes_family(client, auth, oauth_client, tokens):
    # RFC 7009 §2.1: the hint is only an optimisation.
    response = revoke(
        client, oauth_client, {"token": tokens["refresh_token"], "token_type_hint": "access_token"}
    )
    assert response.status_code == 200
    assert refresh(auth, oauth_client, tokens["refresh_token"]).status_code == 400
    assert userinfo_status(client, tokens["access_token"]) == 401


@pytest.mark.parametrize("hint", ["id_token", "bogus", ""])
def test_invalid_token_type_hint_is_ignored(client, oauth_client, tokens, hint):
    # RFC 7009 §2.2: an invalid token type hint value is ignored and does not influence
    # the revocation response.
    response = revoke(
        client, oauth_client, {"token": tokens["access_token"], "token_type_hint": hint}
    )
    assert response.status_code == 200
    assert userinfo_status(client, tokens["access_token"]) == 401


def test_missing_token_is_invalid_request(client, oauth_client):
    # RFC 7009 §2.1: token is REQUIRED; RFC 6749 §5.2 invalid_request.
    response = revoke(client, oauth_client, {})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_confidential_client_without_credentials_is_invalid_client(client, oauth_client, tokens):
    # RFC 7009 §2.1: the server first validates the client credentials; RFC 6749 §5.2.
    response = client.post(
        "/revoke", data={"token": tokens["access_token"], "client_id": oauth_client.client_id}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_wrong_client_secret_is_invalid_client(client, oauth_client, tokens):
    # RFC 6749 §5.2: failed client authentication is invalid_client (401).
    response = client.post(
        "/revoke",
        data={"token": tokens["access_token"]},
        headers=basic_auth(oauth_client.client_id, "wrong-secret"),
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_no_client_at_all_is_invalid_client(client, tokens):
    # RFC 7009 §2.1: the request must identify the client.
    response = client.post("/revoke", data={"token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_public_client_revokes_its_own_token(app, client, auth, user, public_client):
    # RFC 7009 §2.1 / §5: public clients identify themselves with client_id.
    auth.login()
    issued = auth.tokens(public_client)
    response = client.post(
        "/revoke", data={"token": issued["access_token"], "client_id": public_client.client_id}
    )
    assert response.status_code == 200
    assert userinfo_status(client, issued["access_token"]) == 401


def test_client_cannot_revoke_another_clients_token(client, factory, oauth_client, tokens):
    # RFC 7009 §2.1: the server verifies the token was issued to the requesting client;
    # if not, the request is refused (§2.2.1, RFC 6749 §5.2 error).
    other = factory.client(name="Other App")
    response = revoke(client, other, {"token": tokens["access_token"]})
    assert response.status_code == 400
    assert "error" in response.get_json()
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_public_client_cannot_revoke_another_clients_token(client, public_client, tokens):
    # RFC 7009 §2.1: a client_id alone cannot revoke tokens of a different client.
    response = client.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": public_client.client_id}
    )
    assert response.status_code == 400
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_revocation_accepts_post_only(client, oauth_client, tokens):
    # RFC 7009 §2.1: the client requests revocation with an HTTP POST.
    response = client.get(
        "/revoke?token=" + tokens["access_token"],
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert response.status_code == 405
    assert userinfo_status(client, tokens["access_token"]) == 200


def test_revoking_twice_is_harmless(client, oauth_client, tokens):
    # RFC 7009 §2.2: revoking an already invalid token still answers 200.
    assert revoke(client, oauth_client, {"token": tokens["access_token"]}).status_code == 200
    assert revoke(client, oauth_client, {"token": tokens["access_token"]}).status_code == 200
