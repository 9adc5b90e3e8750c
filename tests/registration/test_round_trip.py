"""A relying party registers itself, then signs a user in with only what registration returned.

RFC 7591 §3 + RFC 6749 §4.1 + RFC 7636 + OIDC Core §3.1: the registered client is an ordinary
``Client`` row, so the unchanged authorization server runs the whole code flow for it.
"""

from __future__ import annotations

import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Consent

from ..factories import RegisteredClient
from ..helpers import csrf_token, query

REDIRECT_URI = "https://rp.example/callback"


def discover(client) -> dict:
    return client.get("/.well-known/openid-configuration").get_json()


def register_from_discovery(client, body: dict, token: str | None = None) -> RegisteredClient:
    """Register at the advertised endpoint; keep only what the response says."""
    endpoint = discover(client)["registration_endpoint"].removeprefix("http://localhost")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(endpoint, json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    info = response.get_json()
    return RegisteredClient(
        client_id=info["client_id"],
        client_secret=info.get("client_secret"),
        redirect_uri=info["redirect_uris"][0],
        row=None,
    )


def sign_in(app, client, auth, user, rp: RegisteredClient, alg: str = "RS256"):
    """Login, consent, code, token exchange, ID token check, userinfo."""
    auth.login()
    tokens = auth.tokens(rp, scope="openid profile email")
    assert tokens["token_type"] == "Bearer"
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    id_token = jwt.decode(tokens["id_token"], jwks)
    assert id_token.header["alg"] == alg
    assert id_token.claims["aud"] == rp.client_id
    assert id_token.claims["sub"] == user.sub
    userinfo = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert userinfo.status_code == 200
    assert userinfo.get_json()["email"] == "alice@example.com"
    with app.app_context():
        consent = db.session().scalar(select(Consent).where(Consent.client_id == rp.client_id))
        assert consent is not None and consent.user_id == user.id
    return tokens


@pytest.mark.config(REGISTRATION="open")
def test_public_client_registers_and_signs_in_with_pkce(app, client, auth, user):
    # A native/SPA client: token_endpoint_auth_method=none, PKCE (RFC 7636, RFC 9700 §2.1.1).
    rp = register_from_discovery(
        client,
        {
            "client_name": "Notes SPA",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "scope": "openid profile email",
        },
    )
    assert rp.client_secret is None
    sign_in(app, client, auth, user, rp)


@pytest.mark.config(REGISTRATION="open")
def test_public_client_without_pkce_is_refused(client, auth, user):
    # RFC 9700 §2.1.1: a registered public client gets no special treatment.
    rp = register_from_discovery(
        client, {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}
    )
    auth.login()
    params, _ = auth.code_flow_params(rp)
    del params["code_challenge"], params["code_challenge_method"]
    response = auth.authorize(params)
    assert query(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.config(REGISTRATION="token")
def test_confidential_client_registers_with_initial_token_and_signs_in(
    app, client, auth, user, make_initial_token
):
    # A web server client: initial access token (RFC 7591 §3), client_secret_basic
    # (RFC 6749 §2.3.1), refresh tokens, ES256 ID tokens as registered.
    _, token = make_initial_token(max_uses=1)
    rp = register_from_discovery(
        client,
        {
            "client_name": "Payroll",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"],
            "id_token_signed_response_alg": "ES256",
        },
        token=token,
    )
    assert rp.client_secret
    tokens = sign_in(app, client, auth, user, rp, alg="ES256")
    refreshed = auth.token(
        rp, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    wrong_secret = RegisteredClient(rp.client_id, "not-the-secret", rp.redirect_uri, None)
    code, verifier, _ = auth.get_code(rp)
    assert auth.exchange(wrong_secret, code, verifier).status_code == 401
    with app.app_context():
        event = db.session().scalar(select(AuditEvent).where(AuditEvent.event == "code.issued"))
        assert event.target == rp.client_id


@pytest.mark.config(REGISTRATION="open")
def test_client_secret_post_registration_works_at_the_token_endpoint(client, auth, user):
    rp = register_from_discovery(
        client,
        {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_post"},
    )
    auth.login()
    code, verifier, _ = auth.get_code(rp)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": rp.redirect_uri,
            "client_id": rp.client_id,
            "client_secret": rp.client_secret,
        },
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.config(REGISTRATION="open")
def test_consent_page_shows_registered_name_and_links(client, auth, user):
    # RFC 7591 §2: client_name, policy_uri and tos_uri are shown during approval; §5: they
    # come from the client, so they are https only, shown with their host, and flagged.
    rp = register_from_discovery(
        client,
        {
            "client_name": "Photo Printer",
            "redirect_uris": [REDIRECT_URI],
            "client_uri": "https://printer.example/",
            "policy_uri": "https://printer.example/privacy",
            "tos_uri": "https://printer.example/terms",
            "logo_uri": "https://printer.example/logo.png",
        },
    )
    auth.login()
    params, _ = auth.code_flow_params(rp)
    page = auth.authorize(params, consent=None)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Photo Printer" in html
    assert 'href="https://printer.example/privacy"' in html
    assert 'href="https://printer.example/terms"' in html
    assert 'href="https://printer.example/"' in html
    assert "registered itself" in html
    # RFC 7591 §2: the logo is shown; the CSP admits that one origin for images, nothing else.
    assert 'src="https://printer.example/logo.png"' in html
    assert 'referrerpolicy="no-referrer"' in html
    csp = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://printer.example;" in csp
    assert "script-src 'self';" in csp
    assert csrf_token(html)


@pytest.mark.config(REGISTRATION="open")
def test_registered_client_is_never_first_party(client, auth, user):
    # Self-registered clients always meet the consent page (first_party is never set).
    rp = register_from_discovery(client, {"redirect_uris": [REDIRECT_URI], "first_party": True})
    auth.login()
    params, _ = auth.code_flow_params(rp)
    page = auth.authorize(params, consent=None)
    assert page.status_code == 200
    assert b'name="allow"' in page.data


def client_assertion(client_id: str, key, alg: str) -> dict:
    """RFC 7523 §2.2 / OIDC Core §9: a short-lived assertion for the token endpoint."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://localhost/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    return {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": jwt.encode({"alg": alg}, claims, key, algorithms=[alg]),
    }


@pytest.mark.config(REGISTRATION="open")
@pytest.mark.parametrize("method", ["private_key_jwt", "client_secret_jwt"])
def test_jwt_authenticated_clients_register_and_sign_in(client, auth, user, method):
    # OIDC Core §9: a client registered with a JWT method authenticates with an assertion
    # made from what it registered (its own key) or what registration returned (the secret).
    key = ECKey.generate_key("P-256")
    body = {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": method}
    if method == "private_key_jwt":
        body["jwks"] = {"keys": [key.as_dict(private=False)]}
    rp = register_from_discovery(client, body)
    if method == "client_secret_jwt":
        key, alg = OctKey.import_key(rp.client_secret.encode()), "HS256"
    else:
        assert rp.client_secret is None
        alg = "ES256"
    auth.login()
    code, verifier, _ = auth.get_code(rp)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": rp.redirect_uri,
            **client_assertion(rp.client_id, key, alg),
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["id_token"]
