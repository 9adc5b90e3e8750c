"""CORS for registered origins on the endpoints browser apps fetch, never on /authorize or UI.

Fetch Standard §3.2 (CORS protocol); OAuth 2.0 for Browser-Based Applications §6.3 (token
and other endpoints need CORS for the registered origin); RFC 9700 §4.16 (no framing or
cross-origin reading of the authorization UI).
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from idp import db
from idp.models import Client

from ..helpers import basic_auth

APP_ORIGIN = "https://spa.example:8443"
OTHER_ORIGIN = "https://evil.example"


@pytest.fixture
def spa(factory):
    return factory.client(
        public=True,
        name="SPA",
        redirect_uris=(f"{APP_ORIGIN}/callback", "com.example.app:/oauth2redirect"),
    )


def fetch(client, method: str, path: str, origin: str, **kwargs):
    headers = {"Origin": origin, **kwargs.pop("headers", {})}
    return client.open(path, method=method, headers=headers, **kwargs)


CORS_REQUESTS = [
    ("GET", "/.well-known/openid-configuration", {}),
    ("GET", "/.well-known/oauth-authorization-server", {}),
    ("GET", "/jwks.json", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/.well-known/oauth-protected-resource", {}),  # RFC 9728 §3
    ("POST", "/token", {"data": {"grant_type": "authorization_code", "code": "x"}}),
    ("GET", "/userinfo", {"headers": {"Authorization": "Bearer nothing"}}),
    ("POST", "/revoke", {"data": {"token": "x"}}),
    ("POST", "/introspect", {"data": {"token": "x"}}),
]


def test_registered_origin_may_read_protocol_answers(client, spa):
    # Fetch §3.2.3: Access-Control-Allow-Origin names the requesting origin; Vary: Origin
    # keeps caches from serving one origin's answer to another. Errors are readable too.
    for method, path, kwargs in CORS_REQUESTS:
        response = fetch(client, method, path, APP_ORIGIN, **kwargs)
        assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN, path
        assert "Origin" in response.headers.get("Vary", ""), path
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_unregistered_origin_gets_no_cors_header(client, spa):
    for method, path, kwargs in CORS_REQUESTS:
        response = fetch(client, method, path, OTHER_ORIGIN, **kwargs)
        assert "Access-Control-Allow-Origin" not in response.headers, path
        assert "Origin" in response.headers.get("Vary", ""), path


def test_token_answer_of_a_real_grant_is_readable_by_the_registered_origin(client, factory):
    registered = factory.client(
        grant_types=("client_credentials",), scope="api", redirect_uris=(f"{APP_ORIGIN}/cb",)
    )
    response = fetch(
        client,
        "POST",
        "/token",
        APP_ORIGIN,
        data={"grant_type": "client_credentials"},
        headers=basic_auth(registered.client_id, registered.client_secret),
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_preflight_allows_the_methods_and_headers_of_the_endpoint(client, spa):
    # Fetch §4.8: the preflight answer lists what the actual request may use.
    response = fetch(
        client,
        "OPTIONS",
        "/token",
        APP_ORIGIN,
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    userinfo = fetch(
        client, "OPTIONS", "/userinfo", APP_ORIGIN, headers={"Access-Control-Request-Method": "GET"}
    )
    assert userinfo.headers["Access-Control-Allow-Methods"] == "GET, POST"


def test_authorization_endpoint_and_pages_never_allow_cors(client, spa):
    # The authorization endpoint and the UI are navigated to, never fetched cross-origin.
    for path in ("/authorize?client_id=x", "/login", "/account/", "/logout"):
        for method in ("GET", "OPTIONS"):
            response = fetch(client, method, path, APP_ORIGIN)
            assert "Access-Control-Allow-Origin" not in response.headers, (method, path)


def test_disabled_clients_origins_are_not_allowed(app, client, factory):
    registered = factory.client(public=True, redirect_uris=("https://gone.example/cb",))
    with app.app_context():
        db.session().execute(
            update(Client).where(Client.client_id == registered.client_id).values(disabled=True)
        )
        db.session().commit()
    response = fetch(client, "GET", "/jwks.json", "https://gone.example")
    assert "Access-Control-Allow-Origin" not in response.headers


def test_only_an_exact_registered_origin_matches(client, spa):
    # Origins compare by scheme, host and port exactly (RFC 6454 §5); a custom-scheme redirect
    # URI of a native app has no web origin.
    for origin in ("null", "https://spa.example:8443/", "https://spa.example",
                   "http://spa.example:8443", "https://spa.example:8443.evil.example",
                   "com.example.app:"):  # fmt: skip
        response = fetch(client, "GET", "/jwks.json", origin)
        assert "Access-Control-Allow-Origin" not in response.headers, origin


def test_default_port_is_normalised(client, factory):
    factory.client(public=True, redirect_uris=("https://app.example:443/cb",))
    response = fetch(client, "GET", "/jwks.json", "https://app.example")
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
