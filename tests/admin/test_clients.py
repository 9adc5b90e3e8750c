"""Admin: OAuth clients. Create (RFC 7591 §2 metadata), edit, rotate the secret, disable,
delete; per-client token lifetimes; secrets shown once and stored hashed."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from idp import db
from idp.models import AuditEvent, Client, Consent, Token, secret_hash
from idp.oauth.client_auth import decrypt_secret
from idp.oauth.token_exchange import GRANT_TYPE as TOKEN_EXCHANGE

from ..helpers import Auth, basic_auth
from .support import events, post, row, rows

CONFIDENTIAL = {
    "client_name": "Billing API",
    "client_type": "confidential",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": "https://billing.example/cb\nhttps://billing.example/cb2",
    "post_logout_redirect_uris": "https://billing.example/bye",
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "scopes": ["openid", "profile"],
    "extra_scopes": "invoices.read invoices.write",
    "access_token_lifetime": "600",
    "refresh_token_lifetime": "7200",
    "id_token_signed_response_alg": "ES256",
    "backchannel_logout_uri": "https://billing.example/logout",
    "backchannel_logout_session_required": "y",
    "frontchannel_logout_uri": "https://billing.example/front-logout",
}


def shown_secret(response) -> str:
    match = re.search(r'<code class="secret" id="client-secret">([^<]+)</code>', response.text)
    assert match, "no secret on the page"
    return match.group(1)


def client_named(app, name: str) -> Client:
    return row(app, Client, Client.client_name == name)


def client_credentials(client, client_id: str, secret: str, scope: str = "invoices.read"):
    return client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope},
        headers=basic_auth(client_id, secret),
    )


def assert_audit_has_no(app, secret: str) -> None:
    with app.app_context():
        for event in db.session().query(AuditEvent):
            assert secret not in json.dumps(event.details), event.event
            assert secret_hash(secret) not in json.dumps(event.details), event.event


def test_admin_creates_a_confidential_client_and_sees_its_secret_once(
    app, client, admin_client, admin
):
    response = post(admin_client, "/admin/clients/new", CONFIDENTIAL)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = shown_secret(response)
    created = client_named(app, "Billing API")
    assert created.client_id in response.text
    # Stored: only the SHA-256 of the secret, and the metadata as given.
    assert created.client_secret_hash == secret_hash(secret)
    assert created.redirect_uris == ["https://billing.example/cb", "https://billing.example/cb2"]
    assert created.post_logout_redirect_uris == ["https://billing.example/bye"]
    assert created.grant_types == CONFIDENTIAL["grant_types"]
    assert created.response_types == ["code"]
    assert created.scope == "openid profile invoices.read invoices.write"
    assert (created.access_token_lifetime, created.refresh_token_lifetime) == (600, 7200)
    assert created.id_token_signed_response_alg == "ES256" and not created.first_party
    # Back-Channel and Front-Channel Logout 1.0 registration metadata.
    assert created.backchannel_logout_uri == "https://billing.example/logout"
    assert created.backchannel_logout_session_required is True
    assert created.frontchannel_logout_uri == "https://billing.example/front-logout"
    assert created.frontchannel_logout_session_required is False

    # RFC 6749 §4.4: the secret works, and the client's own lifetime is used (§5.1 expires_in).
    token = client_credentials(client, created.client_id, secret)
    assert token.status_code == 200, token.get_json()
    assert token.get_json()["expires_in"] == 600

    # Shown once: the client's page never shows it again.
    page = admin_client.get(f"/admin/clients/{created.client_id}")
    assert secret not in page.text and created.client_secret_hash not in page.text
    [event] = events(app, "admin.client.created")
    assert (event.actor, event.target) == (admin.sub, created.client_id)
    assert event.details["after"]["client_name"] == "Billing API"
    assert_audit_has_no(app, secret)


@pytest.mark.parametrize("query", [f"after={2**31}", f"before={10**25}", "after=-1&last=1"])
def test_the_client_list_ignores_a_cursor_that_cannot_be_an_id(admin_client, oauth_client, query):
    # Found by fuzzing: ?after=2147483648 reached PostgreSQL (integer out of range): a 500.
    response = admin_client.get(f"/admin/clients?{query}")
    assert response.status_code == 200
    assert oauth_client.client_id in response.text


def test_admin_creates_a_public_client_without_a_secret(app, admin_client):
    response = post(
        admin_client,
        "/admin/clients/new",
        {
            "client_name": "Phone App",
            "client_type": "public",
            "redirect_uris": "com.example.app:/cb",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "offline_access"],
        },
    )
    created = client_named(app, "Phone App")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == f"/admin/clients/{created.client_id}"
    assert created.token_endpoint_auth_method == "none" and created.client_secret_hash is None
    page = admin_client.get(f"/admin/clients/{created.client_id}")
    assert "Rotate secret" not in page.text and "Public" in page.text


def test_the_client_form_explains_how_redirect_uris_are_matched(admin_client):
    # RFC 8252 §7.3 and §8.3: operators learn that loopback IPs take any port, localhost not.
    page = admin_client.get("/admin/clients/new")
    hint = re.search(r'<p class="hint" id="redirect_uris-hint">([^<]+)</p>', page.text)
    assert hint, "no hint on the redirect URI field"
    assert "[::1] accepts any port" in hint.group(1)
    assert "localhost gets no such exception" in hint.group(1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"redirect_uris": "http://rp.example/cb"}, "loopback"),  # RFC 8252 §7.3
        ({"redirect_uris": "https://rp.example/cb#frag"}, "fragment"),  # RFC 6749 §3.1.2
        ({"post_logout_redirect_uris": "javascript:alert(1)"}, "not allowed"),
        ({"redirect_uris": ""}, "needs a redirect URI"),
        ({"client_type": "public"}, "cannot use client_credentials"),
        ({"grant_types": ["refresh_token"]}, "come with the authorization code"),
        ({"grant_types": []}, "at least one grant type"),
        ({"extra_scopes": 'bad"scope'}, "not a valid scope"),
        ({"access_token_lifetime": "5"}, "between 60 and 86400"),
        ({"backchannel_logout_uri": "http://rp.example/bc"}, "absolute https"),
        # Front-Channel Logout 1.0 §2: same origin as a redirect URI.
        ({"frontchannel_logout_uri": "https://elsewhere.example/fc"}, "registered redirect"),
        ({"client_name": ""}, "required"),
    ],
)
def test_client_form_refuses_invalid_metadata(app, admin_client, change, message):
    response = post(admin_client, "/admin/clients/new", {**CONFIDENTIAL, **change})
    assert response.status_code == 400
    assert message.lower() in response.text.lower()
    assert rows(app, Client) == []


def test_admin_edits_a_client_and_the_audit_shows_before_and_after(app, admin_client, oauth_client):
    form = {
        "client_name": "Renamed App",
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": "https://rp.example/cb\nhttps://rp.example/other",
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "email"],
        "first_party": "y",
        "access_token_lifetime": "900",
    }
    url = f"/admin/clients/{oauth_client.client_id}/edit"
    page = admin_client.get(url)
    assert "https://rp.example/cb" in page.text  # the form shows the current metadata
    assert post(admin_client, url, form).status_code == 302
    edited = row(app, Client, Client.client_id == oauth_client.client_id)
    assert edited.client_name == "Renamed App" and edited.first_party
    assert edited.token_endpoint_auth_method == "client_secret_post"
    assert edited.redirect_uris == ["https://rp.example/cb", "https://rp.example/other"]
    assert edited.scope == "openid email" and edited.access_token_lifetime == 900
    assert edited.client_secret_hash == secret_hash(oauth_client.client_secret)  # unchanged
    [event] = events(app, "admin.client.updated")
    assert event.details["before"]["client_name"] == "Test App"
    assert event.details["after"]["client_name"] == "Renamed App"
    assert event.details["before"]["first_party"] is False
    assert "grant_types" not in event.details["after"]  # unchanged fields are left out


def test_rotating_the_secret_shows_a_new_one_and_the_old_one_stops_working(
    app, client, admin_client, admin, factory
):
    registered = factory.client(
        grant_types=["client_credentials"], scope="invoices.read", redirect_uris=[]
    )
    assert (
        client_credentials(client, registered.client_id, registered.client_secret).status_code
        == 200
    )
    response = post(admin_client, f"/admin/clients/{registered.client_id}/secret")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = shown_secret(response)
    assert secret != registered.client_secret
    # RFC 6749 §5.2: the old secret is now invalid_client.
    old = client_credentials(client, registered.client_id, registered.client_secret)
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    assert client_credentials(client, registered.client_id, secret).status_code == 200
    [event] = events(app, "admin.client.secret_rotated")
    assert (event.actor, event.target, event.details) == (admin.sub, registered.client_id, {})
    assert_audit_has_no(app, secret)


def test_a_public_client_has_no_secret_to_rotate(app, admin_client, public_client):
    response = post(admin_client, f"/admin/clients/{public_client.client_id}/secret")
    assert response.status_code == 400
    assert row(app, Client, Client.client_id == public_client.client_id).client_secret_hash is None


def test_disabling_a_client_makes_it_unknown_until_enabled_again(
    app, client, auth, admin_client, user, oauth_client
):
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert post(admin_client, f"/admin/clients/{oauth_client.client_id}/disable").status_code == 302
    assert row(app, Client, Client.client_id == oauth_client.client_id).disabled
    # RFC 6749 §5.2 invalid_client at the token endpoint, §4.1.2.1 at /authorize (no redirect
    # to an unverified client), RFC 6750 §3.1 invalid_token at UserInfo.
    refresh = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 401 and refresh.get_json()["error"] == "invalid_client"
    params, _ = auth.code_flow_params(oauth_client)
    assert auth.authorize(params, consent=None).status_code == 400
    assert client.get("/userinfo", headers=bearer).status_code == 401
    assert "Disabled" in admin_client.get("/admin/clients").text

    assert post(admin_client, f"/admin/clients/{oauth_client.client_id}/enable").status_code == 302
    assert client.get("/userinfo", headers=bearer).status_code == 200
    assert [e.details["after"] for e in events(app, "admin.client.disabled")] == [
        {"disabled": True}
    ]
    assert events(app, "admin.client.enabled")[0].details["after"] == {"disabled": False}


def test_deleting_a_client_asks_first_and_removes_its_tokens_and_consents(
    app, client, auth, admin_client, user, oauth_client
):
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    page = admin_client.get(f"/admin/clients/{oauth_client.client_id}/delete")
    assert page.status_code == 200 and "cannot be undone" in page.text
    response = post(admin_client, f"/admin/clients/{oauth_client.client_id}/delete")
    assert urlsplit(response.headers["Location"]).path == "/admin/clients"
    assert row(app, Client, Client.client_id == oauth_client.client_id) is None
    assert rows(app, Token) == [] and rows(app, Consent) == []
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 401
    [event] = events(app, "admin.client.deleted")
    assert (event.target, event.details["before"]["client_name"]) == (
        oauth_client.client_id,
        "Test App",
    )


def test_dynamically_registered_clients_are_badged_and_can_be_disabled(
    app, admin_client, oauth_client
):
    with app.app_context():
        session = db.session()
        session.get(Client, oauth_client.row.id).dynamically_registered = True
        session.commit()
    assert "Dynamically registered" in admin_client.get("/admin/clients").text
    page = admin_client.get(f"/admin/clients/{oauth_client.client_id}")
    assert "Dynamically registered" in page.text
    assert post(admin_client, f"/admin/clients/{oauth_client.client_id}/disable").status_code == 302
    assert row(app, Client, Client.client_id == oauth_client.client_id).disabled


def test_per_client_token_lifetimes_are_honoured(app, client, auth, user, factory):
    # RFC 6749 §5.1 expires_in, and the refresh token's own expiry, follow the client's
    # settings; a client without them gets the server defaults.
    short = factory.client(name="Short")
    with app.app_context():
        session = db.session()
        row_ = session.get(Client, short.row.id)
        row_.access_token_lifetime, row_.refresh_token_lifetime = 300, 3600
        session.commit()
    auth.login()
    tokens = auth.tokens(short, scope="openid offline_access")
    assert tokens["expires_in"] == 300
    stored = row(app, Token, Token.client_id == short.client_id)
    assert stored.refresh_expires_at - stored.issued_at == timedelta(seconds=3600)

    refreshed = Auth(client).token(
        short, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.get_json()["expires_in"] == 300

    default = factory.client(name="Default")
    assert auth.tokens(default, scope="openid")["expires_in"] == app.config["ACCESS_TOKEN_LIFETIME"]
    stored = row(app, Token, Token.client_id == default.client_id)
    assert stored.refresh_expires_at - stored.issued_at == timedelta(
        seconds=app.config["REFRESH_TOKEN_LIFETIME"]
    )


def test_a_client_secret_jwt_client_keeps_its_hmac_key_through_rotation(app, admin_client):
    # RFC 7523 §2.2: the secret is the HMAC key, so the server keeps it (encrypted).
    form = {**CONFIDENTIAL, "token_endpoint_auth_method": "client_secret_jwt"}
    secret = shown_secret(post(admin_client, "/admin/clients/new", form))
    created = client_named(app, "Billing API")
    assert created.token_endpoint_auth_method == "client_secret_jwt"
    assert secret not in (created.client_secret_encrypted or "")
    with app.test_request_context():
        assert decrypt_secret(created) == secret
    rotated = shown_secret(post(admin_client, f"/admin/clients/{created.client_id}/secret"))
    with app.test_request_context():
        assert decrypt_secret(client_named(app, "Billing API")) == rotated != secret


JWKS = {
    "keys": [
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "kid": "k1",
        }
    ]
}


def test_a_jwks_nested_too_deep_is_refused_like_any_bad_jwks(app, admin_client):
    # Found while fuzzing: json.loads raises RecursionError (not ValueError) on deep nesting,
    # and the client form answered 500.
    base = {**CONFIDENTIAL, "token_endpoint_auth_method": "private_key_jwt"}
    response = post(admin_client, "/admin/clients/new", {**base, "jwks": "[" * 5000 + "]" * 5000})
    assert response.status_code == 400 and "Not a JWK Set" in response.text
    assert rows(app, Client) == []


def test_a_private_key_jwt_client_registers_keys_and_has_no_secret(app, admin_client):
    # RFC 7523 §2.2 / RFC 7591 §2: jwks or jwks_uri, never both, public keys only.
    base = {**CONFIDENTIAL, "token_endpoint_auth_method": "private_key_jwt"}
    missing = post(admin_client, "/admin/clients/new", base)
    assert missing.status_code == 400 and "needs the client" in missing.text
    both = {**base, "jwks": json.dumps(JWKS), "jwks_uri": "https://billing.example/jwks"}
    assert post(admin_client, "/admin/clients/new", both).status_code == 400
    private = {"keys": [{**JWKS["keys"][0], "d": "secret"}]}
    refused = post(admin_client, "/admin/clients/new", {**base, "jwks": json.dumps(private)})
    assert refused.status_code == 400 and "public keys only" in refused.text
    assert rows(app, Client) == []

    response = post(admin_client, "/admin/clients/new", {**base, "jwks": json.dumps(JWKS)})
    created = client_named(app, "Billing API")
    assert response.status_code == 302  # no secret to show
    assert created.client_secret_hash is None and created.client_metadata["jwks"] == JWKS
    page = admin_client.get(f"/admin/clients/{created.client_id}")
    assert "1 registered key(s)" in page.text and "Rotate secret" not in page.text
    assert post(admin_client, f"/admin/clients/{created.client_id}/secret").status_code == 400


def test_changing_to_client_secret_jwt_issues_a_new_secret(app, client, admin_client, factory):
    registered = factory.client(
        grant_types=["client_credentials"], scope="invoices.read", redirect_uris=[]
    )
    form = {
        "client_name": "Test App",
        "token_endpoint_auth_method": "client_secret_jwt",
        "grant_types": ["client_credentials"],
        "extra_scopes": "invoices.read",
        "require_par": "y",
    }
    response = post(admin_client, f"/admin/clients/{registered.client_id}/edit", form)
    assert response.status_code == 200
    secret = shown_secret(response)
    edited = row(app, Client, Client.client_id == registered.client_id)
    assert edited.client_secret_hash == secret_hash(secret)
    assert edited.client_metadata["require_pushed_authorization_requests"] is True
    with app.test_request_context():
        assert decrypt_secret(edited) == secret
    assert events(app, "admin.client.updated")[0].details["secret_reissued"] is True
    assert_audit_has_no(app, secret)


def test_a_device_client_may_have_refresh_tokens(app, admin_client):
    # RFC 8628 §3.5: the device grant issues refresh tokens like the code grant.
    form = {
        "client_name": "Smart TV",
        "client_type": "public",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        "scopes": ["openid", "offline_access"],
    }
    assert post(admin_client, "/admin/clients/new", form).status_code == 302
    assert client_named(app, "Smart TV").response_types == []


def test_editing_keeps_the_token_exchange_grant_and_sets_the_token_format(
    app, admin_client, factory
):
    # RFC 8693 is granted with its policy by `idp clients policy`; the form leaves both alone.
    registered = factory.client(grant_types=["client_credentials"], redirect_uris=[])
    policy = {
        "audiences": ["https://api.example"],
        "subject_clients": ["*"],
        "subject_token_types": ["access_token"],
    }
    with app.app_context():
        session = db.session()
        stored = session.get(Client, registered.row.id)
        stored.grant_types = ["client_credentials", TOKEN_EXCHANGE]
        stored.token_exchange_policy = policy
        session.commit()
    page = admin_client.get(f"/admin/clients/{registered.client_id}")
    assert "Allowed for https://api.example" in page.text
    form = {
        "client_name": "Test App",
        "grant_types": ["client_credentials"],
        "extra_scopes": "api",
        "access_token_format": "jwt",
    }
    assert (
        post(admin_client, f"/admin/clients/{registered.client_id}/edit", form).status_code == 302
    )
    edited = row(app, Client, Client.client_id == registered.client_id)
    assert edited.grant_types == ["client_credentials", TOKEN_EXCHANGE]
    assert edited.token_exchange_policy == policy and edited.access_token_format == "jwt"
