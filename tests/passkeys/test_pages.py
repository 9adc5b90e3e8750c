"""The passkey pages through real forms and requests: add, rename and remove on the account
page (each add and remove audited and mailed, NIST SP 800-63B §4.6), passwordless sign-in
from the sign-in page, the second factor, and the admin's view of a user's passkeys."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import db
from idp.models import User, UserSession

from ..helpers import Auth, csrf_refused, csrf_token
from .authenticator import SoftAuthenticator
from .support import (
    ORIGIN,
    add_passkey,
    events,
    login_page_token,
    mails,
    options_of,
    post_assertion,
    sign_in_options,
    stored_passkeys,
)


@pytest.fixture
def alice_client(app, user):
    browser = app.test_client()
    assert Auth(browser).login("alice").status_code == 302
    return browser


def text(response) -> str:
    return response.get_data(as_text=True)


# --- account page ----------------------------------------------------------------------------


def test_add_a_passkey(app, user, alice_client, authenticator):
    response = add_passkey(alice_client, authenticator, name="  Work   laptop ")
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    [row] = stored_passkeys(app)
    assert row.name == "Work laptop" and row.credential_id == authenticator.id
    page = text(alice_client.get("/account/"))
    assert "Work laptop" in page and "Add a passkey" in page
    assert row.credential_id not in page  # no key material on the page
    [event] = events(app, "passkey.added")
    assert event.actor == user.sub and event.details["name"] == "Work laptop"
    # NIST SP 800-63B §4.6: the subscriber is told of a bound authenticator.
    [message] = mails(app)
    assert message.to_address == "alice@example.com"
    assert message.subject == "A passkey was added to your account"


def test_the_add_page_asks_for_a_name_and_carries_the_options(app, user, alice_client):
    page = text(alice_client.get("/account/passkeys/new"))
    options = options_of(page)
    assert options["rp"] == {"id": "localhost", "name": "localhost"}
    assert 'data-passkey="create"' in page and "js/passkeys.js" in page
    assert "(required)" in page  # the name is a required field


def test_without_a_credential_the_page_says_why(app, user, alice_client):
    # Script off or no WebAuthn in the browser: the form posts no credential.
    page = text(alice_client.get("/account/passkeys/new"))
    response = alice_client.post(
        "/account/passkeys/new", data={"csrf_token": csrf_token(page), "name": "Phone"}
    )
    assert response.status_code == 400
    body = text(response)
    assert "<title>Error: Add a passkey" in body and 'id="error-summary"' in body
    assert "did not create a passkey" in body
    assert stored_passkeys(app) == [] and mails(app) == []


def test_a_cancelled_ceremony_is_told_as_such(app, user, alice_client):
    page = text(alice_client.get("/account/passkeys/new"))
    response = alice_client.post(
        "/account/passkeys/new",
        data={"csrf_token": csrf_token(page), "name": "Phone", "client_error": "NotAllowedError"},
    )
    assert response.status_code == 400 and "cancelled or timed out" in text(response)


def test_a_name_is_required(app, user, alice_client, authenticator):
    response = add_passkey(alice_client, authenticator, name="")
    assert response.status_code == 400
    assert "Name: This field is required." in text(response)
    assert stored_passkeys(app) == []


def test_a_response_for_another_origin_is_refused_on_the_page(app, user, alice_client):
    page = text(alice_client.get("/account/passkeys/new"))
    credential = SoftAuthenticator().create(options_of(page), "https://evil.example")
    response = alice_client.post(
        "/account/passkeys/new",
        data={"csrf_token": csrf_token(page), "name": "X", "credential": json.dumps(credential)},
    )
    assert response.status_code == 400 and "could not be verified" in text(response)
    assert stored_passkeys(app) == []
    assert events(app, "passkey.registration_failed")


def test_the_pages_need_a_signed_in_user(client):
    for url in (
        "/account/passkeys/new",
        "/account/passkeys/1/rename",
        "/account/passkeys/1/remove",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_rename(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    [row] = stored_passkeys(app)
    url = f"/account/passkeys/{row.id}/rename"
    page = text(alice_client.get(url))
    assert 'value="Laptop"' in page
    empty = alice_client.post(url, data={"csrf_token": csrf_token(page), "name": " "})
    assert empty.status_code == 400 and "<title>Error: Rename passkey" in text(empty)
    done = alice_client.post(url, data={"csrf_token": csrf_token(page), "name": "Old laptop"})
    assert done.status_code == 302
    assert [r.name for r in stored_passkeys(app)] == ["Old laptop"]
    assert events(app, "passkey.renamed")[0].details["old"] == "Laptop"


def test_remove_asks_first_then_removes_on_post(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    [row] = stored_passkeys(app)
    url = f"/account/passkeys/{row.id}/remove"
    page = text(alice_client.get(url))
    assert "Remove passkey “Laptop”?" in page and "your only passkey" in page
    assert len(stored_passkeys(app)) == 1  # GET changes nothing
    assert csrf_refused(alice_client.post(url, data={}))
    assert len(stored_passkeys(app)) == 1
    response = alice_client.post(url, data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert stored_passkeys(app) == []
    [event] = events(app, "passkey.removed")
    assert event.actor == user.sub and event.target == user.sub
    assert [m.subject for m in mails(app)][-1] == "A passkey was removed from your account"


def test_another_users_passkey_is_not_found(app, user, bob, alice_client):
    bob_client = app.test_client()
    Auth(bob_client).login("bob")
    add_passkey(bob_client, SoftAuthenticator())
    [row] = stored_passkeys(app)
    for action in ("rename", "remove"):
        assert alice_client.get(f"/account/passkeys/{row.id}/{action}").status_code == 404
    token = csrf_token(text(alice_client.get("/account/passkeys/new")))
    response = alice_client.post(f"/account/passkeys/{row.id}/remove", data={"csrf_token": token})
    assert response.status_code == 404
    assert len(stored_passkeys(app)) == 1


# --- passwordless sign-in ------------------------------------------------------------------


def test_the_sign_in_page_offers_passkeys(client):
    page = text(client.get("/login"))
    # Conditional mediation: the browser offers passkeys in the username field's autofill.
    assert 'autocomplete="username webauthn"' in page
    assert "Use a passkey" in page and "js/passkeys.js" in page


def test_passwordless_usernameless_sign_in(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    browser = app.test_client()
    token = login_page_token(browser)
    options = sign_in_options(browser, token)
    assert options["allowCredentials"] == []
    response = post_assertion(
        browser, token, authenticator.get(options, ORIGIN), next_url="/authorize?x=1"
    )
    assert response.status_code == 200, text(response)
    assert response.get_json() == {"location": "/authorize?x=1"}
    assert browser.get("/account/").status_code == 200
    with app.app_context():
        row = db.session().scalars(select(UserSession).order_by(UserSession.id.desc())).first()
        assert row.amr == ["hwk", "user"] and row.ended_at is None
    assert events(app, "passkey.used")


def test_passwordless_sign_in_never_redirects_off_site(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    browser = app.test_client()
    token = login_page_token(browser)
    options = sign_in_options(browser, token)
    response = post_assertion(browser, token, authenticator.get(options, ORIGIN), "//evil.example")
    assert response.get_json() == {"location": "/account/"}


def test_passwordless_sign_in_needs_the_csrf_token(app, client):
    # The script's endpoints answer JSON (idp.errors.JSON_PATHS), CSRF refusals too.
    for url in ("/login/passkey/options", "/login/passkey"):
        response = client.post(url, json={})
        assert response.status_code == 400
        assert "CSRF" in response.get_json()["error_description"]


def test_a_failed_passwordless_sign_in_answers_json_and_signs_nobody_in(
    app, user, alice_client, authenticator
):
    add_passkey(alice_client, authenticator)
    browser = app.test_client()
    token = login_page_token(browser)
    options = sign_in_options(browser, token)
    wrong = authenticator.get(options, "https://evil.example")
    response = post_assertion(browser, token, wrong)
    assert response.status_code == 400
    assert response.get_json() == {"message": "That passkey could not be used to sign in."}
    assert browser.get("/account/").status_code == 302
    # The same options cannot be answered again, even correctly.
    again = post_assertion(browser, token, authenticator.get(options, ORIGIN))
    assert again.status_code == 400


@pytest.mark.parametrize("body", [None, [], {"credential": "x"}, {"credential": {}}])
def test_malformed_sign_in_bodies_are_refused(app, user, client, body):
    token = login_page_token(client)
    sign_in_options(client, token)
    response = client.post("/login/passkey", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 400 and "message" in response.get_json()


# --- second factor (auth.mfa: the password was right, the passkey is pending) -------------


def half_signed_in(app, username="alice"):
    """A browser whose password was right: auth.mfa sends it to the passkey, its first
    factor (issue #15: passkey first, then TOTP, then a recovery code)."""
    browser = app.test_client()
    response = Auth(browser).login(username)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login/second-factor/passkey")
    assert browser.get("/account/").status_code == 302  # not signed in yet
    return browser


def test_second_factor_with_a_passkey(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    browser = half_signed_in(app)
    page = text(browser.get("/login/second-factor/passkey"))
    options = options_of(page)
    assert [c["id"] for c in options["allowCredentials"]] == [authenticator.id]
    response = browser.post(
        "/login/second-factor/passkey",
        data={
            "csrf_token": csrf_token(page),
            "credential": json.dumps(authenticator.get(options, ORIGIN)),
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    assert browser.get("/account/").status_code == 200
    # RFC 8176: a password and a device-bound key are two factors, hence "mfa".
    [event] = events(app, "mfa.success")
    assert event.details["amr"] == ["pwd", "hwk", "user", "mfa"]


def test_second_factor_refuses_another_users_passkey(app, user, bob, authenticator):
    # Issue #15 bypass: an assertion for another user's credential.
    alice_client = app.test_client()
    Auth(alice_client).login("alice")
    add_passkey(alice_client, SoftAuthenticator())  # Alice's own passkey, elsewhere
    bob_client = app.test_client()
    Auth(bob_client).login("bob")
    add_passkey(bob_client, authenticator)
    browser = half_signed_in(app)
    page = text(browser.get("/login/second-factor/passkey"))
    response = browser.post(
        "/login/second-factor/passkey",
        data={
            "csrf_token": csrf_token(page),
            "credential": json.dumps(authenticator.get(options_of(page), ORIGIN)),
        },
    )
    assert response.status_code == 400 and "could not be used" in text(response)
    assert browser.get("/account/").status_code == 302  # still not signed in
    assert events(app, "passkey.failure")[0].details["reason"] == "credential of another user"
    with app.app_context():  # issue #15: counted toward the lockout
        assert db.session().scalar(select(User.failed_logins).where(User.username == "alice")) == 1


def test_second_factor_without_a_pending_sign_in_goes_to_sign_in(client):
    response = client.get("/login/second-factor/passkey")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


# --- admin -------------------------------------------------------------------------------------


@pytest.fixture
def app_config(app_config):
    # The admin here signs in with the password alone (admins' MFA: tests/mfa/).
    app_config["MFA_REQUIRED_FOR_ADMINS"] = False
    return app_config


@pytest.fixture
def admin_client(app, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser


def test_admin_sees_and_removes_a_users_passkey(
    app, user, alice_client, authenticator, admin_client
):
    add_passkey(alice_client, authenticator, name="Yubikey")
    [row] = stored_passkeys(app)
    detail = text(admin_client.get(f"/admin/users/{row.user_id}"))
    assert "Yubikey" in detail and "Device-bound (hwk)" in detail
    assert row.credential_id not in detail
    url = f"/admin/users/{row.user_id}/passkeys/{row.id}/remove"
    confirm = text(admin_client.get(url))
    assert "Remove passkey “Yubikey” of alice?" in confirm
    assert len(stored_passkeys(app)) == 1
    response = admin_client.post(url, data={"csrf_token": csrf_token(confirm)})
    assert response.status_code == 302
    assert stored_passkeys(app) == []
    [event] = events(app, "passkey.removed")
    assert event.target == user.sub and event.actor != user.sub
    removed = mails(app)[-1]
    assert removed.to_address == "alice@example.com"
    assert "by an administrator" in removed.message


def test_admin_passkey_removal_needs_an_admin(app, user, alice_client, authenticator):
    add_passkey(alice_client, authenticator)
    [row] = stored_passkeys(app)
    response = alice_client.get(f"/admin/users/{row.user_id}/passkeys/{row.id}/remove")
    assert response.status_code in (302, 403, 404)
    assert len(stored_passkeys(app)) == 1
