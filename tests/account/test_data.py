"""Downloading one's own data (issue 14, flow 8): a JSON file with the profile, sessions,
consents and the audit events about the user; never a secret, never another user's data."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import db
from idp.models import KnownDevice, Token, User, UserSession

from ..helpers import Auth, csrf_refused, csrf_token
from .own import events, token_from


@pytest.fixture
def alice(factory):
    # An admin, so that she has acted on someone else (whose data must stay out).
    return factory.user(
        username="alice", email="alice@example.com", name="Alice Liddell", is_admin=True
    )


@pytest.fixture
def bob(factory):
    return factory.user(username="bob", email="bob@example.com", name="Bob Builder")


def download(client):
    return client.post("/account/data", data={"csrf_token": token_from(client)})


def test_the_export_is_a_json_attachment_with_the_users_data(
    app, client, auth, alice, oauth_client
):
    auth.login()
    auth.tokens(oauth_client, scope="openid email")
    response = download(client)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and 'filename="account-alice-' in disposition
    data = json.loads(response.data)
    assert data["issuer"] == app.config["ISSUER"]
    profile = data["profile"]
    assert (profile["username"], profile["email"], profile["name"]) == (
        "alice",
        "alice@example.com",
        "Alice Liddell",
    )
    assert profile["sub"] == alice.sub and profile["new_device_notices"] is True
    (session,) = data["sessions"]
    assert session["ip"] == "127.0.0.1" and session["ended_at"] is None
    (consent,) = data["consents"]
    assert consent["client_id"] == oauth_client.client_id
    assert consent["client_name"] == "Test App"
    assert sorted(consent["scopes"]) == ["email", "openid"] and consent["granted_at"]
    by_name = {e["event"]: e for e in data["audit_events"]}
    assert by_name["login.success"]["role"] == "actor"
    granted = by_name["consent.granted"]  # about an application: in full
    assert granted["target"] == oauth_client.client_id and granted["details"]["scope"]
    (exported,) = events(app, "account.data_exported")
    assert exported.actor == alice.sub


def test_the_export_holds_no_secret(app, client, auth, alice, oauth_client):
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid email offline_access")
    body = download(client).get_data(as_text=True)

    with app.app_context():
        s = db.session()
        user = s.scalar(select(User).where(User.username == "alice"))
        secrets = [user.password_hash]
        for token in s.scalars(select(Token)):
            secrets += [token.access_token_hash, token.refresh_token_hash, token.family_id]
        secrets += [row.sid for row in s.scalars(select(UserSession))]
        secrets += [row.token_hash for row in s.scalars(select(KnownDevice))]
    secrets += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
    secrets += [client.get_cookie("idp_device").value, client.get_cookie("idp_session").value]
    for secret in filter(None, secrets):
        assert secret not in body
    for word in ("password_hash", "token_hash", "$argon2", '"sid"'):
        assert word not in body


def test_another_users_data_never_appears(app, client, auth, alice, bob, oauth_client):
    # Bob signs in, authorizes the app, and alice (an admin) edits his profile.
    bob_browser = app.test_client()
    bob_auth = Auth(bob_browser)
    assert bob_auth.login("bob").status_code == 302
    bob_auth.tokens(oauth_client, scope="openid profile")
    auth.login()
    form = client.get(f"/admin/users/{bob.id}/edit")
    edit = {
        "csrf_token": csrf_token(form.text),
        "name": "Robert Hidden",
        "email": "bob@example.com",
    }
    assert client.post(f"/admin/users/{bob.id}/edit", data=edit).status_code == 302

    data = json.loads(download(client).data)
    body = json.dumps(data)
    for value in ("bob@example.com", "Robert Hidden", "Bob Builder", bob.sub, '"bob"'):
        assert value not in body
    assert data["consents"] == [] and len(data["sessions"]) == 1
    # Her own action on bob is listed, without bob's data: name, time and IP only.
    (edited,) = [e for e in data["audit_events"] if e["event"] == "admin.user.updated"]
    assert edited == {
        "event": "admin.user.updated",
        "at": edited["at"],
        "ip": "127.0.0.1",
        "role": "actor",
    }

    # And bob's export shows the change made to him, in full.
    bob_data = json.loads(download(bob_browser).data)
    (change,) = [e for e in bob_data["audit_events"] if e["event"] == "admin.user.updated"]
    assert change["role"] == "target" and change["details"]["after"]["name"] == "Robert Hidden"
    assert "alice@example.com" not in json.dumps(bob_data)


def test_the_export_needs_sign_in_a_post_and_the_csrf_token(app, client, auth, alice):
    assert client.post("/account/data").status_code in (302, 400)
    auth.login()
    assert client.get("/account/data").status_code == 405
    assert csrf_refused(client.post("/account/data", data={}))
    assert events(app, "account.data_exported") == []
