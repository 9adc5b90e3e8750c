"""RP-Initiated Logout 1.0: the end_session_endpoint, its hints, redirects and confirmation."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import import_key
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, UserSession
from idp.oauth import keys, oidc

from ..helpers import Auth, csrf_token, query
from .conftest import decode, find

LOGGED_OUT = "https://rp.example/logged-out"


@pytest.fixture
def rp(factory):
    return factory.client(
        name="Logout RP", logout_metadata={"post_logout_redirect_uris": [LOGGED_OUT]}
    )


@pytest.fixture
def id_token(auth, user, rp) -> str:
    """alice signs in to the RP; its ID token (with sid) is the usual hint."""
    auth.login()
    return auth.tokens(rp)["id_token"]


def sessions(app, user) -> list[UserSession]:
    return find(app, select(UserSession).where(UserSession.user_id == user.id))


def live(app, user) -> list[UserSession]:
    return [s for s in sessions(app, user) if s.ended_at is None]


def signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def events(app, name: str) -> list[AuditEvent]:
    return find(app, select(AuditEvent).where(AuditEvent.event == name))


def end_session(client, **params):
    return client.get("/end_session?" + urlencode(params))


def resign(app, claims: dict, **changes) -> str:
    """An ID token with changed claims, signed by this server's own key."""
    with app.app_context():
        return oidc.sign({**claims, **changes}, "RS256")


def test_discovery_advertises_end_session_and_both_logout_channels(client):
    # RP-Initiated Logout 1.0 §2.1; Front-Channel Logout 1.0 §3; Back-Channel Logout 1.0 §2.1.
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["end_session_endpoint"] == "http://localhost/end_session"
    assert meta["frontchannel_logout_supported"] is True
    assert meta["frontchannel_logout_session_supported"] is True
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


def test_id_token_carries_the_sid_of_the_server_session(app, client, user, id_token):
    # Front-Channel Logout 1.0 §3 / Back-Channel Logout 1.0 §2.1: sid names the OP session.
    claims = decode(client, id_token).claims
    (row,) = live(app, user)
    assert claims["sid"] == row.sid


def test_valid_hint_ends_the_session_and_returns_to_the_rp_with_state(app, client, user, id_token):
    # RP-Initiated Logout 1.0 §2, §3: a hint naming this session needs no confirmation.
    response = end_session(
        client, id_token_hint=id_token, post_logout_redirect_uri=LOGGED_OUT, state="s-42"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT + "?state=s-42"
    assert live(app, user) == []
    assert sessions(app, user)[0].end_reason == "logout"
    assert not signed_in(client)
    (event,) = events(app, "logout")
    assert event.actor == user.sub and event.details["confirmed"] is False


def test_expired_id_token_hint_is_still_accepted(app, client, user, id_token):
    # RP-Initiated Logout 1.0 §2: the OP accepts hints whose exp has passed.
    claims = decode(client, id_token).claims
    expired = resign(app, claims, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    response = end_session(client, id_token_hint=expired, post_logout_redirect_uri=LOGGED_OUT)
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT
    assert live(app, user) == []


def foreign_token(app, claims: dict) -> str:
    """Same claims and kid, signed by a key this server never had."""
    with app.app_context():
        kid = keys.store().signing_key("RS256").kid
    other = import_key(keys.generate("RS256").private_jwk)
    return jwt.encode({"alg": "RS256", "kid": kid}, claims, other, ["RS256"])


@pytest.mark.parametrize("forgery", ["foreign_key", "other_issuer", "not_a_jwt", "logout_token"])
def test_hint_this_server_did_not_issue_is_refused_without_redirect(
    app, client, user, id_token, forgery
):
    # RP-Initiated Logout 1.0 §4: on an invalid request the OP must not redirect.
    claims = decode(client, id_token).claims
    hint = {
        "foreign_key": lambda: foreign_token(app, claims),
        "other_issuer": lambda: resign(app, claims, iss="https://evil.example"),
        "not_a_jwt": lambda: "not.a.jwt",
        "logout_token": lambda: resign(app, claims, events={"x": {}}),
    }[forgery]()
    response = end_session(client, id_token_hint=hint, post_logout_redirect_uri=LOGGED_OUT)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "cannot continue" in response.text
    assert "<title>Error: " in response.text  # WCAG 2.2 §3.3.1 (issue 18)
    assert len(live(app, user)) == 1 and signed_in(client)
    assert events(app, "logout.request_refused")


def test_client_id_that_is_not_the_hints_audience_is_refused(app, client, user, factory, id_token):
    # RP-Initiated Logout 1.0 §2: client_id must match the client the hint was issued to.
    other = factory.client(
        name="Other RP", logout_metadata={"post_logout_redirect_uris": [LOGGED_OUT]}
    )
    response = end_session(
        client,
        id_token_hint=id_token,
        client_id=other.client_id,
        post_logout_redirect_uri=LOGGED_OUT,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert len(live(app, user)) == 1


@pytest.mark.parametrize(
    "uri",
    [
        "https://rp.example/elsewhere",
        LOGGED_OUT + "/",
        LOGGED_OUT + "?next=x",
        "https://RP.example/logged-out",
        "https://evil.example/logged-out",
    ],
)
def test_unregistered_post_logout_redirect_uri_is_not_followed(app, client, user, id_token, uri):
    # RP-Initiated Logout 1.0 §3: exact match with a registered URI, else no redirect.
    response = end_session(client, id_token_hint=id_token, post_logout_redirect_uri=uri)
    assert response.status_code == 200
    assert "You are signed out" in response.text
    assert "not registered" in response.text
    assert uri not in response.text
    assert live(app, user) == []


def test_post_logout_redirect_uri_without_any_client_is_not_followed(app, client, auth, user):
    # RP-Initiated Logout 1.0 §3: the URI must be registered by an identified client.
    auth.login()
    page = end_session(client, post_logout_redirect_uri=LOGGED_OUT)
    assert page.status_code == 200 and "Sign out?" in page.text
    response = client.post(
        "/end_session",
        data={
            "csrf_token": csrf_token(page.text),
            "post_logout_redirect_uri": LOGGED_OUT,
            "confirm": "Sign out",
        },
    )
    assert response.status_code == 200
    assert "could not be identified" in response.text
    assert live(app, user) == []


def test_request_without_hint_asks_the_user_to_confirm(app, client, auth, user, rp):
    # RP-Initiated Logout 1.0 §2: without a hint the OP asks the user (no silent logout).
    auth.login()
    response = end_session(
        client, client_id=rp.client_id, post_logout_redirect_uri=LOGGED_OUT, state="s1"
    )
    assert response.status_code == 200
    assert "Sign out?" in response.text and "Logout RP" in response.text
    assert 'name="csrf_token"' in response.text
    assert f'name="post_logout_redirect_uri" value="{LOGGED_OUT}"' in response.text
    # CSP3 §6.3.1: the form's redirect to the RP must be allowed by form-action.
    assert "form-action 'self' https://rp.example" in response.headers["Content-Security-Policy"]
    assert len(live(app, user)) == 1 and signed_in(client)


def test_confirmation_without_csrf_token_does_not_sign_out(app, client, auth, user, rp):
    # RP-Initiated Logout 1.0 §2 (and the CSRF rule of the issue): a third-party page that
    # posts the confirmation form itself gets the page again, the session stays.
    auth.login()
    response = client.post(
        "/end_session",
        data={
            "client_id": rp.client_id,
            "post_logout_redirect_uri": LOGGED_OUT,
            "confirm": "Sign out",
        },
    )
    assert response.status_code == 200 and "Sign out?" in response.text
    assert len(live(app, user)) == 1 and signed_in(client)


def test_confirming_signs_out_and_returns_to_the_rp(app, client, auth, user, rp):
    # RP-Initiated Logout 1.0 §2-§3: confirmed, the session ends and the RP gets its state.
    auth.login()
    page = end_session(
        client, client_id=rp.client_id, post_logout_redirect_uri=LOGGED_OUT, state="s2"
    )
    response = client.post(
        "/end_session",
        data={
            "csrf_token": csrf_token(page.text),
            "client_id": rp.client_id,
            "post_logout_redirect_uri": LOGGED_OUT,
            "state": "s2",
            "confirm": "Sign out",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT + "?state=s2"
    assert live(app, user) == [] and not signed_in(client)
    (event,) = events(app, "logout")
    assert event.details["confirmed"] is True and event.details["client"] == rp.client_id


def test_declining_keeps_the_session(app, client, auth, user, rp):
    # RP-Initiated Logout 1.0 §2: the user may refuse; nothing ends.
    auth.login()
    page = end_session(client, client_id=rp.client_id)
    response = client.post(
        "/end_session",
        data={
            "csrf_token": csrf_token(page.text),
            "client_id": rp.client_id,
            "cancel": "Stay signed in",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/account/")
    assert len(live(app, user)) == 1 and signed_in(client)
    assert events(app, "logout.declined")


def test_hint_of_another_user_asks_for_confirmation(app, client, auth, user, factory, rp):
    # RP-Initiated Logout 1.0 §2: the hint does not name the signed-in user's session.
    factory.user(username="bob", email="bob@example.com")
    auth.login(username="bob")
    bobs_token = auth.tokens(rp)["id_token"]
    alices_browser = app.test_client()
    Auth(alices_browser).login()
    response = end_session(
        alices_browser, id_token_hint=bobs_token, post_logout_redirect_uri=LOGGED_OUT
    )
    assert response.status_code == 200 and "Sign out?" in response.text
    assert len(live(app, user)) == 1


def test_hint_of_an_earlier_session_asks_for_confirmation(app, client, auth, user, id_token):
    # RP-Initiated Logout 1.0 §2: the hint's sid is not this session's, so it cannot be tied.
    auth.logout()
    auth.login()  # a new session with a new sid
    response = end_session(client, id_token_hint=id_token, post_logout_redirect_uri=LOGGED_OUT)
    assert response.status_code == 200 and "Sign out?" in response.text
    assert signed_in(client)


def test_logout_request_may_be_posted(app, client, user, id_token):
    # RP-Initiated Logout 1.0 §2: the OP supports GET and POST (form serialization).
    response = client.post(
        "/end_session",
        data={"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT, "state": "p"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT + "?state=p"
    assert live(app, user) == []


def test_cross_site_post_without_cookie_is_relayed_from_this_origin(app, client, user, id_token):
    # RP-Initiated Logout 1.0 §2 with SameSite=Lax cookies: a cross-site POST arrives without
    # the session cookie, so the page re-posts the same parameters from this origin.
    cookieless = app.test_client()
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT, "state": "r"}
    relay = cookieless.post("/end_session", data=params)
    assert relay.status_code == 200
    assert 'action="/end_session"' in relay.text and 'name="relayed" value="1"' in relay.text
    assert len(live(app, user)) == 1
    # The browser re-posts it, now with the cookie.
    relayed = {**params, "relayed": "1"}
    response = client.post("/end_session", data=relayed)
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT + "?state=r"
    assert live(app, user) == []


def test_signed_out_user_is_sent_straight_back(app, client, user, rp):
    # RP-Initiated Logout 1.0 §3: nothing to end; the registered URI is followed.
    response = end_session(
        client, client_id=rp.client_id, post_logout_redirect_uri=LOGGED_OUT, state="z"
    )
    assert response.status_code == 302
    assert response.headers["Location"] == LOGGED_OUT + "?state=z"


def test_ui_locales_and_logout_hint_are_accepted(app, client, auth, user, rp):
    # RP-Initiated Logout 1.0 §2: optional parameters are accepted and carried along.
    auth.login()
    response = end_session(
        client, client_id=rp.client_id, ui_locales="fr-CA en", logout_hint="alice"
    )
    assert response.status_code == 200
    assert 'name="ui_locales" value="fr-CA en"' in response.text
    assert 'name="logout_hint" value="alice"' in response.text


def test_repeated_parameter_is_refused(app, client, user, id_token):
    # RP-Initiated Logout 1.0 §4 (and OAuth 2.0's no-repeat rule): error, no redirect.
    response = client.get(
        "/end_session?"
        + urlencode(
            [("id_token_hint", id_token), ("state", "a"), ("state", "b")],
        )
    )
    assert response.status_code == 400
    assert len(live(app, user)) == 1


def test_signed_out_page_redirect_uses_query_state_exactly(client, app, user, id_token):
    # RP-Initiated Logout 1.0 §3: state is passed back unchanged, URL-encoded.
    response = end_session(
        client, id_token_hint=id_token, post_logout_redirect_uri=LOGGED_OUT, state="a b&c"
    )
    assert query(response.headers["Location"]) == {"state": "a b&c"}
    with app.app_context():
        assert db.session().scalar(select(UserSession.ended_at)) is not None
