"""Redirect URI matching: exact, except the port of loopback IP literals.

RFC 9700 §4.1.3 (exact string matching), RFC 8252 §7.3 and OAuth 2.1 §8.4.2 (any port on a
loopback IP literal, since a native app listens on a port chosen at run time), RFC 8252 §8.3
(``localhost`` gets no such exception), RFC 6749 §4.1.3 (the token request's redirect_uri is
the authorization request's, port included).
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuthorizationCode, Token
from idp.oauth.redirects import redirect_uri_matches

from ..helpers import query

NATIVE_V4 = "http://127.0.0.1/callback"
NATIVE_V6 = "http://[::1]/callback"


@pytest.fixture
def native_app(factory):
    """A public native app that registered loopback redirect URIs without a port."""
    return factory.client(
        public=True,
        name="Native CLI",
        redirect_uris=(NATIVE_V4, NATIVE_V6, "http://localhost/callback"),
    )


def count(app, model) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model))


def code_at(auth, registered, redirect_uri):
    """Sign-in and consent with redirect_uri; the code and verifier the client gets."""
    params, verifier = auth.code_flow_params(registered, redirect_uri=redirect_uri)
    response = auth.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    return query(location)["code"], verifier


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:53123/callback",
        "http://127.0.0.1:1/callback",
        "http://127.0.0.1:65535/callback",
        "http://[::1]:53123/callback",
        NATIVE_V4,  # the registered URI itself (port 80)
    ],
)
def test_loopback_ip_redirect_uri_accepts_any_port(app, auth, user, native_app, redirect_uri):
    # RFC 8252 §7.3: "MUST allow any port to be specified at the time of the request".
    auth.login()
    code, _ = code_at(auth, native_app, redirect_uri)
    with app.app_context():
        row = db.session().scalar(select(AuthorizationCode))
        assert row.redirect_uri == redirect_uri  # the one used, with its port
    assert code


def test_registered_port_is_not_required_either(auth, user, factory):
    # RFC 8252 §7.3: a registered port is no more binding than none.
    registered = factory.client(public=True, redirect_uris=("http://127.0.0.1:8080/cb",))
    auth.login()
    code_at(auth, registered, "http://127.0.0.1:49152/cb")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:53123/callback",  # RFC 8252 §8.3: not a loopback IP literal
        "http://127.0.0.1:53123/callback/",  # path
        "http://127.0.0.1:53123/Callback",
        "http://127.0.0.1:53123/other",
        "http://127.0.0.1:53123/callback?x=1",  # query
        "http://127.0.0.1:53123/callback#frag",
        "https://127.0.0.1:53123/callback",  # scheme
        "HTTP://127.0.0.1:53123/callback",
        "http://127.0.0.2:53123/callback",  # another loopback address is another host
        "http://[::1]:53123/callback/",
        "http://[0:0:0:0:0:0:0:1]:53123/callback",  # written differently from registration
        "http://user@127.0.0.1:53123/callback",  # userinfo
        "http://127.0.0.1:0/callback",  # not a port anything listens on
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:/callback",
        "http://127.0.0.1:53123/call\tback",  # urlsplit would drop the tab
        "http://127.0.0.1.evil.example:53123/callback",
    ],
)
def test_anything_but_the_loopback_port_must_match_exactly(
    app, client, auth, user, native_app, redirect_uri
):
    # RFC 9700 §4.1.3: exact match; RFC 6749 §4.1.2.1: no redirect to an unchecked URI.
    auth.login()
    params, _ = auth.code_flow_params(native_app, redirect_uri=redirect_uri)
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"invalid_request" in response.data
    assert count(app, AuthorizationCode) == 0


def test_localhost_keeps_its_exact_match(auth, user, native_app):
    # RFC 8252 §8.3: localhost is allowed as registered, without the port exception.
    auth.login()
    code_at(auth, native_app, "http://localhost/callback")


def test_non_loopback_uris_with_a_port_still_match_exactly(client, auth, user, factory):
    # RFC 9700 §4.1.3: the exception is for loopback IPs only.
    registered = factory.client(redirect_uris=("https://rp.example/cb",))
    auth.login()
    params, _ = auth.code_flow_params(registered, redirect_uri="https://rp.example:8443/cb")
    assert client.get("/authorize?" + urlencode(params)).status_code == 400


def test_token_request_needs_the_port_used_at_authorize(app, auth, user, native_app):
    # RFC 6749 §4.1.3: redirect_uri must be identical to the authorization request's; the
    # port the app listened on is part of it (RFC 8252 §7.3).
    auth.login()
    used = "http://127.0.0.1:53123/callback"
    code, verifier = code_at(auth, native_app, used)
    for other in (NATIVE_V4, "http://127.0.0.1:53124/callback"):
        response = auth.exchange(native_app, code, verifier, redirect_uri=other)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_grant"
    assert count(app, Token) == 0
    response = auth.exchange(native_app, code, verifier, redirect_uri=used)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["access_token"]
    assert count(app, Token) == 1


def test_pushed_request_accepts_a_loopback_port(client, auth, user, native_app):
    # RFC 9126 §2.1: the pushed parameters are checked like at /authorize.
    used = "http://[::1]:61000/callback"
    params, _ = auth.code_flow_params(native_app, redirect_uri=used)
    pushed = client.post("/par", data=params)
    assert pushed.status_code == 201, pushed.get_json()
    refused = client.post(
        "/par", data={**params, "redirect_uri": "http://localhost:61000/callback"}
    )
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_request"
    auth.login()
    response = auth.authorize(
        {"client_id": native_app.client_id, "request_uri": pushed.get_json()["request_uri"]}
    )
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc == "[::1]:61000"


@pytest.mark.parametrize(
    ("registered", "requested", "expected"),
    [
        ("https://rp.example/cb", "https://rp.example/cb", True),
        ("https://rp.example/cb", "https://rp.example:443/cb", False),
        ("http://127.0.0.1/cb", "http://127.0.0.1:9/cb", True),
        ("http://127.9.8.7/cb", "http://127.9.8.7:9/cb", True),  # all of 127.0.0.0/8
        ("http://[::1]/cb", "http://[::1]:9/cb", True),
        ("http://[::ffff:127.0.0.1]/cb", "http://[::ffff:127.0.0.1]:9/cb", False),
        ("http://localhost/cb", "http://localhost:9/cb", False),
        ("com.example.app:/cb", "com.example.app:/cb", True),
    ],
)
def test_redirect_uri_matches(registered, requested, expected):
    assert redirect_uri_matches(registered, requested) is expected
