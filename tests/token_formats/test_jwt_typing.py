"""Explicit typing (RFC 8725 §3.11): each kind of JWT is accepted only where it belongs.

The server's keys sign three kinds of JWT: ID tokens (typ JWT), access tokens (typ at+jwt,
RFC 9068 §2.1) and logout tokens (typ logout+jwt, Back-Channel Logout 1.0 §2.4). Every
place that accepts a JWT is tried with every kind (issue 19 §4).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Client, UserSession
from idp.oauth import logout

from ..helpers import Auth, basic_auth, pkce_pair, query
from .conftest import INVENTORY, introspect, set_client
from .test_token_exchange import ACCESS, ID, exchange, orders_api, user_tokens  # noqa: F401

KINDS = ("id_token", "access_token", "logout_token")


@pytest.fixture
def jwts(app, user, oauth_client, orders_api, user_tokens) -> dict:  # noqa: F811
    """One JWT of each kind, all about the same user, issued to the same client."""
    set_client(
        app,
        orders_api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": [oauth_client.client_id],
            "subject_token_types": ["access_token", "id_token"],
        },
    )
    assert user_tokens["access_token"].count(".") == 2  # a JWT access token (the default)
    with app.test_request_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == oauth_client.client_id))
        sid = session.scalar(select(UserSession.sid).where(UserSession.user_id == user.id))
        logout_token = logout.logout_token(row, user.sub, sid)
    return {
        "id_token": user_tokens["id_token"],
        "access_token": user_tokens["access_token"],
        "logout_token": logout_token,
    }


def accepted_by(place) -> set[str]:
    return {kind for kind in KINDS if place(kind)}


def test_end_session_accepts_only_an_id_token_as_hint(app, jwts):
    # RP-Initiated Logout 1.0 §2: id_token_hint is an ID token; an access token must not let
    # a resource server sign the user out (RFC 9068 §2.1), nor may a logout token.
    def place(kind):
        response = app.test_client().get("/end_session", query_string={"id_token_hint": jwts[kind]})
        assert response.status_code in (200, 400)
        return response.status_code == 200

    assert accepted_by(place) == {"id_token"}


def test_authorize_accepts_only_an_id_token_as_hint(app, oauth_client, jwts):
    # OIDC Core §3.1.2.1: id_token_hint is an ID token previously issued by this server.
    def place(kind):
        _, challenge = pkce_pair()
        response = app.test_client().get(
            "/authorize",
            query_string={
                "response_type": "code",
                "client_id": oauth_client.client_id,
                "redirect_uri": oauth_client.redirect_uri,
                "scope": "openid",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "id_token_hint": jwts[kind],
            },
        )
        assert response.status_code == 302
        location = response.headers["Location"]
        if urlsplit(location).path == "/login":
            return True  # accepted: nobody is signed in here, so on to the sign-in
        assert query(location)["error"] == "invalid_request"
        return False

    assert accepted_by(place) == {"id_token"}


def test_par_accepts_only_an_id_token_as_hint(app, oauth_client, jwts):
    # RFC 9126 §2.1: a pushed request is checked like one at the authorization endpoint.
    def place(kind):
        _, challenge = pkce_pair()
        response = app.test_client().post(
            "/par",
            data={
                "response_type": "code",
                "client_id": oauth_client.client_id,
                "redirect_uri": oauth_client.redirect_uri,
                "scope": "openid",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "id_token_hint": jwts[kind],
            },
            headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
        )
        if response.status_code == 201:
            return True
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
        return False

    assert accepted_by(place) == {"id_token"}


@pytest.mark.parametrize(("subject_type", "kind"), [(ID, "id_token"), (ACCESS, "access_token")])
def test_token_exchange_accepts_only_the_named_kind(
    app,
    orders_api,  # noqa: F811
    jwts,
    subject_type,
    kind,  # noqa: F811
):
    # RFC 8693 §2.1/§3: subject_token_type says what the token is; any other kind of JWT
    # presented under that type is invalid_request (§2.2.2).
    def place(presented):
        response = exchange(
            app.test_client(), orders_api, jwts[presented], subject_type, audience=INVENTORY
        )
        if response.status_code == 200:
            return True
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
        return False

    assert accepted_by(place) == {kind}


def test_userinfo_and_introspection_accept_only_the_access_token(app, oauth_client, jwts):
    # OIDC Core §5.3 / RFC 6750: UserInfo takes an access token; RFC 7662: only tokens
    # this server issued as access or refresh tokens are active.
    def userinfo(kind):
        response = app.test_client().get(
            "/userinfo", headers={"Authorization": f"Bearer {jwts[kind]}"}
        )
        assert response.status_code in (200, 401)
        return response.status_code == 200

    def introspection(kind):
        return introspect(app.test_client(), oauth_client, jwts[kind]).get_json()["active"]

    assert accepted_by(userinfo) == {"access_token"}
    assert accepted_by(introspection) == {"access_token"}


def test_an_access_token_cannot_sign_the_user_out_without_a_question(
    app, client, user, oauth_client, jwts
):
    # Issue 19 §4: the signed-in user's own access token, sent as id_token_hint, must not
    # end the session (it used to, because a hint without sid counted as this session).
    response = client.get("/end_session", query_string={"id_token_hint": jwts["access_token"]})
    assert response.status_code == 400
    assert Auth(client).client.get("/account/").status_code == 200
