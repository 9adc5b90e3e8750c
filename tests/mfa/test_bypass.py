"""No step of a sign-in can be skipped: a pending second factor is not a session."""

from __future__ import annotations

import pytest

from tests.helpers import Auth

from .conftest import code_at, enrol_in_account, post_form, secret_of


@pytest.fixture
def alice_with_app(client, auth, user):
    auth.login()
    secret = enrol_in_account(client)
    auth.logout()
    return secret


def test_authorize_account_and_admin_are_closed_while_pending(
    app, client, auth, factory, alice_with_app, oauth_client
):
    assert auth.login().location.endswith("/login/totp")
    params, _ = auth.code_flow_params(oauth_client)
    # OIDC Core §3.1.2.3: no session yet, so /authorize asks for a sign-in.
    response = auth.authorize(params)
    assert response.status_code == 302 and "/login" in response.location
    assert "code=" not in response.location
    assert "/login" in client.get("/account/").location
    admin = client.get("/admin/users")
    assert admin.status_code in (302, 401, 403) and "/admin/users" not in (admin.location or "")
    # prompt=none says so to the client instead of signing anyone in.
    silent = auth.authorize({**params, "prompt": "none"})
    assert "error=login_required" in silent.location


def test_another_users_code_does_not_finish_a_pending_sign_in(
    app, client, auth, factory, alice_with_app
):
    factory.user(username="bob", email="bob@example.com")
    bob_browser = app.test_client()
    bob = Auth(bob_browser)
    bob.login("bob")
    bob_secret = enrol_in_account(bob_browser)
    auth.login()  # Alice's password: pending for Alice
    refused = post_form(client, "/login/totp", code=code_at(bob_secret, 1))
    assert refused.status_code == 401
    assert "/login" in client.get("/account/").location


def test_factor_pages_without_a_pending_sign_in_send_to_login(client, alice_with_app):
    for path in ("/login/totp", "/login/recovery", "/login/enrol"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location


def test_factor_forms_need_the_csrf_token(app, client, auth, alice_with_app):
    auth.login()
    secret = secret_of(app)
    response = client.post("/login/totp", data={"code": code_at(secret, 1)})
    assert response.status_code == 400
    assert "/login" in client.get("/account/").location


def test_the_next_url_survives_the_second_factor_and_stays_on_site(
    app, client, auth, alice_with_app
):
    auth.login(next_url="//evil.example/")
    done = post_form(client, "/login/totp", code=code_at(alice_with_app, 1))
    assert done.status_code == 302 and done.location.endswith("/account/")
