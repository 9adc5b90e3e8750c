"""Pushed authorization requests (RFC 9126): the PAR endpoint, request_uri at the
authorization endpoint, one-time use, and requiring PAR per client and server-wide."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select, update

from idp import db
from idp.models import (
    AuditEvent,
    Client,
    PushedAuthorizationRequest,
    UserSession,
    secret_hash,
    utcnow,
)

from ..helpers import allowed_methods, basic_auth, csrf_token, pkce_pair, query
from .conftest import set_row

PREFIX = "urn:ietf:params:oauth:request_uri:"


def auth_params(registered, **extra) -> tuple[dict, str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": registered.client_id,
        "redirect_uri": registered.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}, verifier


def push(http, registered, params: dict, headers: dict | None = None):
    if headers is None and registered.client_secret:
        headers = basic_auth(registered.client_id, registered.client_secret)
    return http.post("/par", data=params, headers=headers or {})


def pushed(http, registered, **extra) -> tuple[str, dict, str]:
    params, verifier = auth_params(registered, **extra)
    response = push(http, registered, params)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request_uri"], params, verifier


def authorize_with(http, client_id: str, request_uri: str, **extra):
    return http.get(
        "/authorize?" + urlencode({"client_id": client_id, "request_uri": request_uri, **extra})
    )


def stored(app, request_uri: str) -> PushedAuthorizationRequest | None:
    with app.app_context():
        return db.session().scalar(
            select(PushedAuthorizationRequest).where(
                PushedAuthorizationRequest.request_uri_hash == secret_hash(request_uri)
            )
        )


def consent(http, response):
    """Answer the consent page the way the browser would (POST to its form action)."""
    page = response.get_data(as_text=True)
    action = page.split('<form method="post" action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return http.post(action, data={"csrf_token": csrf_token(page), "allow": "Allow"}), action


# --- §2: the PAR endpoint -------------------------------------------------------------------


def test_push_returns_a_request_uri(app, client, oauth_client):
    # RFC 9126 §2.2: 201 with request_uri (urn:ietf:params:oauth:request_uri:...) and
    # expires_in; stored hashed and bound to the client.
    params, _ = auth_params(oauth_client)
    response = push(client, oauth_client, params)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["request_uri"].startswith(PREFIX)
    assert len(body["request_uri"]) - len(PREFIX) >= 43
    assert body["expires_in"] == 60
    row = stored(app, body["request_uri"])
    assert row.client_id == oauth_client.client_id
    assert row.params["code_challenge"] == [params["code_challenge"]]
    assert (row.expires_at - row.created_at) == timedelta(seconds=60)
    with app.app_context():
        event = db.session().scalar(select(AuditEvent).where(AuditEvent.event == "par.pushed"))
        assert event.target == oauth_client.client_id


@pytest.mark.config(PAR_LIFETIME=30)
def test_lifetime_comes_from_configuration(client, oauth_client):
    params, _ = auth_params(oauth_client)
    assert push(client, oauth_client, params).get_json()["expires_in"] == 30


def test_push_requires_client_authentication(client, oauth_client):
    # RFC 9126 §2: the client authenticates as at the token endpoint.
    params, _ = auth_params(oauth_client)
    response = push(client, oauth_client, params, headers=basic_auth(oauth_client.client_id, "x"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_public_client_pushes_with_its_client_id(client, public_client):
    # RFC 9126 §2: public clients identify themselves with client_id.
    params, _ = auth_params(public_client)
    assert push(client, public_client, params).status_code == 201


@pytest.mark.parametrize(
    "change, error",
    [
        ({"redirect_uri": "https://attacker.example/cb"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"request_uri": PREFIX + "abc"}, "invalid_request"),
        # RFC 9101 (tests/jar): an unsigned request object is refused.
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request_object"),
        ({"client_id": "someone-else"}, "invalid_request"),
    ],
    ids=[
        "redirect_uri",
        "response_type",
        "pkce-plain",
        "prompt",
        "max_age",
        "request_uri",
        "request",
        "client_id",
    ],
)
def test_pushed_request_is_validated_like_an_authorization_request(
    app, client, oauth_client, change, error
):
    # RFC 9126 §2.1: the server validates the pushed request as it would at /authorize, and
    # request_uri MUST NOT be pushed; §2.3: errors answer the client directly, as JSON.
    params, _ = auth_params(oauth_client, **change)
    response = push(client, oauth_client, params)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    assert "Location" not in response.headers
    with app.app_context():
        assert db.session().scalar(select(PushedAuthorizationRequest)) is None


def test_public_client_must_push_pkce(client, public_client):
    # RFC 9700 §2.1.1 as at the authorization endpoint: public clients need PKCE.
    params, _ = auth_params(public_client, code_challenge=None, code_challenge_method=None)
    response = push(client, public_client, params)
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("response_type", ['to"ken', "cödé"])
def test_pushed_response_type_with_odd_characters_is_refused(client, oauth_client, response_type):
    # RFC 9126 §2.3 / RFC 6749 §5.2: a JSON error whose description keeps to NQSCHAR, not
    # the 500 Authlib's ValueError gave (found by schemathesis).
    params, _ = auth_params(oauth_client, response_type=response_type)
    response = push(client, oauth_client, params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "unsupported_response_type"
    assert '"' not in body["error_description"] and body["error_description"].isascii()


@pytest.mark.parametrize("redirect_uri", ["https://rp.example/cb£", 'https://rp.example/"cb'])
def test_unregistered_redirect_uri_with_odd_characters_is_refused(
    client, oauth_client, redirect_uri
):
    # RFC 9126 §2.1 / RFC 6749 §3.1.2.3: not a registered redirect URI, so invalid_request,
    # with a description inside RFC 6749 §5.2's characters (a 500 before; schemathesis).
    params, _ = auth_params(oauth_client, redirect_uri=redirect_uri)
    response = push(client, oauth_client, params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert '"' not in body["error_description"] and body["error_description"].isascii()


def test_par_endpoint_accepts_post_only(client):
    # RFC 9126 §2.3: 405 Method Not Allowed.
    response = client.get("/par")
    assert response.status_code == 405
    assert allowed_methods(response) == {"POST"}


# --- §4: the authorization request with request_uri ----------------------------------------


def test_authorization_with_request_uri_issues_a_code(app, client, auth, user, oauth_client):
    # RFC 9126 §4: client_id + request_uri stand for the pushed parameters.
    auth.login()
    request_uri, params, verifier = pushed(client, oauth_client)
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert response.status_code == 200  # consent page
    response, action = consent(client, response)
    assert parse_qs(urlsplit(action).query) == {
        "client_id": [oauth_client.client_id],
        "request_uri": [request_uri],
    }
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert response.headers["Location"].startswith(oauth_client.redirect_uri + "?")
    assert result["state"] == params["state"]
    assert result["iss"] == "http://localhost"
    tokens = auth.exchange(oauth_client, result["code"], verifier)
    assert tokens.status_code == 200, tokens.get_json()
    assert tokens.get_json()["scope"] == "openid profile"
    assert stored(app, request_uri).used_at is not None


def test_sign_in_round_trip_carries_only_the_request_uri(client, auth, user, oauth_client):
    # RFC 9126 §1: the parameters stay out of the browser; sign-in returns to client_id and
    # request_uri only.
    request_uri, params, _ = pushed(client, oauth_client)
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert urlsplit(response.headers["Location"]).path == "/login"
    next_url = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
    assert parse_qs(urlsplit(next_url).query) == {
        "client_id": [oauth_client.client_id],
        "request_uri": [request_uri],
    }
    assert params["code_challenge"] not in next_url
    # The login page names the client and allows the pushed redirect URI as form target.
    login_page = client.get(response.headers["Location"])
    assert "https://rp.example" in login_page.headers["Content-Security-Policy"]
    assert auth.login(next_url=next_url).headers["Location"] == next_url
    response = client.get(next_url)
    assert response.status_code == 200 and b'name="allow"' in response.data


def test_pushed_prompt_login_is_honoured_once(app, client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1 prompt=login, pushed: sign in again, then continue (no loop).
    auth.login()
    with app.app_context():  # signed in a while ago, not in this very second
        session = db.session()
        session.execute(update(UserSession).values(auth_time=UserSession.auth_time - 30))
        session.commit()
    request_uri, _, _ = pushed(client, oauth_client, prompt="login")
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert urlsplit(response.headers["Location"]).path == "/login"
    next_url = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
    auth.login(next_url=next_url)
    response = client.get(next_url)
    assert response.status_code == 200 and b'name="allow"' in response.data


def test_a_sign_in_earlier_in_the_same_second_does_not_honour_prompt_login(
    app, client, auth, user, oauth_client, monkeypatch
):
    # OIDC Core §3.1.2.1 prompt=login: the sign-in must come after the request. One that
    # happened 0.3 s before the browser arrived, in the same second, is not a new one.
    from idp.auth import session as user_session

    signed_in = float(int(time.time())) + 0.5
    monkeypatch.setattr(user_session, "time", SimpleNamespace(time=lambda: signed_in))
    auth.login()
    monkeypatch.undo()
    request_uri, _, _ = pushed(client, oauth_client, prompt="login")
    with app.app_context():  # the browser arrives 0.3 s after that sign-in
        session = db.session()
        arrived = datetime.fromtimestamp(signed_in + 0.3, UTC)
        session.execute(
            update(PushedAuthorizationRequest)
            .where(PushedAuthorizationRequest.request_uri_hash == secret_hash(request_uri))
            .values(claimed_at=arrived, expires_at=arrived + timedelta(minutes=10))
        )
        session.commit()
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_request_uri_is_used_once(app, client, auth, user, oauth_client):
    # RFC 9126 §4: one-time use; a second authorization with it is refused.
    auth.login()
    request_uri, _, _ = pushed(client, oauth_client)
    first, _ = consent(client, authorize_with(client, oauth_client.client_id, request_uri))
    assert "code" in query(first.headers["Location"])
    again = authorize_with(client, oauth_client.client_id, request_uri)
    assert again.status_code == 400
    assert b"invalid_request_uri" in again.data


def test_reload_before_the_answer_is_allowed(client, auth, user, oauth_client):
    # RFC 9126 §4: the server MAY allow duplicate requests from a user reloading the page.
    auth.login()
    request_uri, _, _ = pushed(client, oauth_client)
    assert authorize_with(client, oauth_client.client_id, request_uri).status_code == 200
    assert authorize_with(client, oauth_client.client_id, request_uri).status_code == 200


def test_expired_request_uri_is_refused(app, client, auth, user, oauth_client):
    # RFC 9126 §4: "An expired request_uri MUST be rejected as invalid."
    auth.login()
    request_uri, _, _ = pushed(client, oauth_client)
    set_row(app, PushedAuthorizationRequest, stored(app, request_uri).id, expires_at=utcnow())
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert response.status_code == 400
    assert b"invalid_request_uri" in response.data


def test_arrival_extends_the_request_for_the_sign_in(app, client, oauth_client):
    # The 60 s are for the client to send the browser; signing in may take longer.
    request_uri, _, _ = pushed(client, oauth_client)
    authorize_with(client, oauth_client.client_id, request_uri)
    row = stored(app, request_uri)
    assert row.claimed_at is not None
    assert row.expires_at - row.claimed_at == timedelta(seconds=600)


def test_request_uri_of_another_client_is_refused(client, auth, user, oauth_client, factory):
    # RFC 9126 §4 / §7.1: the request_uri is bound to the client that pushed it.
    other = factory.client(name="Other")
    auth.login()
    request_uri, _, _ = pushed(client, oauth_client)
    response = authorize_with(client, other.client_id, request_uri)
    assert response.status_code == 400
    assert b"invalid_request_uri" in response.data


def test_unknown_request_uri_is_refused(client, auth, user, oauth_client):
    auth.login()
    response = authorize_with(client, oauth_client.client_id, PREFIX + "made-up")
    assert response.status_code == 400
    assert b"invalid_request_uri" in response.data


def test_other_parameters_must_match_what_was_pushed(client, auth, user, oauth_client):
    # RFC 9101 §5 (which RFC 9126 §4 builds on): only the pushed parameters count; a
    # different value next to request_uri is refused rather than silently ignored.
    auth.login()
    request_uri, params, _ = pushed(client, oauth_client)
    response = authorize_with(
        client, oauth_client.client_id, request_uri, scope="openid profile email"
    )
    assert response.status_code == 400
    assert b"must be sent in the pushed request" in response.data
    response = authorize_with(
        client, oauth_client.client_id, request_uri, redirect_uri="https://rp.example/other"
    )
    assert response.status_code == 400


def test_repeating_a_pushed_value_is_accepted(client, auth, user, oauth_client):
    # OIDC clients repeat response_type and scope next to request_uri; identical is fine.
    auth.login()
    request_uri, params, _ = pushed(client, oauth_client)
    response = authorize_with(
        client,
        oauth_client.client_id,
        request_uri,
        response_type="code",
        scope=params["scope"],
    )
    assert response.status_code == 200


def test_denial_ends_the_pushed_request(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2.1 access_denied goes back with the pushed state; the request is used.
    auth.login()
    request_uri, params, _ = pushed(client, oauth_client)
    page = authorize_with(client, oauth_client.client_id, request_uri)
    action = (
        f"/authorize?{urlencode({'client_id': oauth_client.client_id, 'request_uri': request_uri})}"
    )
    response = client.post(
        action, data={"csrf_token": csrf_token(page.get_data(as_text=True)), "deny": "Deny"}
    )
    result = query(response.headers["Location"])
    assert result["error"] == "access_denied" and result["state"] == params["state"]
    assert stored(app, request_uri).used_at is not None


def test_pushed_prompt_none_error_returns_to_the_client(client, oauth_client):
    # OIDC Core §3.1.2.6 login_required, from pushed parameters (state and redirect too).
    request_uri, params, _ = pushed(client, oauth_client, prompt="none")
    response = authorize_with(client, oauth_client.client_id, request_uri)
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert result["error"] == "login_required" and result["state"] == params["state"]


def test_pushed_form_post_is_honoured(client, auth, user, oauth_client):
    # OAuth 2.0 Form Post Response Mode, pushed: the code is posted, not put in the URL.
    auth.login()
    request_uri, _, _ = pushed(client, oauth_client, response_mode="form_post")
    response, _ = consent(client, authorize_with(client, oauth_client.client_id, request_uri))
    assert response.status_code == 200
    assert b'method="post"' in response.data and b'name="code"' in response.data


# --- §5, §6: requiring PAR ------------------------------------------------------------------


def test_client_that_requires_par_cannot_send_plain_requests(app, client, auth, user, oauth_client):
    # RFC 9126 §6 require_pushed_authorization_requests (client metadata): invalid_request.
    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == oauth_client.client_id))
        row.client_metadata = {"require_pushed_authorization_requests": True}
        session.commit()
    auth.login()
    params, _ = auth_params(oauth_client)
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 400
    assert b"invalid_request" in response.data
    request_uri, _, _ = pushed(client, oauth_client)
    assert authorize_with(client, oauth_client.client_id, request_uri).status_code == 200


@pytest.mark.config(REQUIRE_PUSHED_AUTHORIZATION_REQUESTS=True)
def test_server_wide_requirement_is_enforced_and_advertised(client, auth, user, oauth_client):
    # RFC 9126 §5: require_pushed_authorization_requests in the metadata, and enforced.
    doc = client.get("/.well-known/oauth-authorization-server").get_json()
    assert doc["require_pushed_authorization_requests"] is True
    auth.login()
    params, _ = auth_params(oauth_client)
    assert client.get("/authorize?" + urlencode(params)).status_code == 400
    request_uri, _, _ = pushed(client, oauth_client)
    assert authorize_with(client, oauth_client.client_id, request_uri).status_code == 200


def test_discovery_advertises_the_par_endpoint(client):
    # RFC 9126 §5.
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["pushed_authorization_request_endpoint"] == "http://localhost/par"
    assert doc["require_pushed_authorization_requests"] is False
