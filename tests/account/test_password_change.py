"""Changing one's password on the account page (issue 14, flow 1; NIST SP 800-63B rev. 4
§3.1.1.2). Mail is read from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from idp import db
from idp.models import Token

from ..factories import PASSWORD
from ..helpers import Auth, csrf_refused, csrf_token
from .password_support import (  # noqa: F401
    NEW_PASSWORD,
    app_config,
    deliver,
    events,
    get_user,
    instance,
    mailbox,
    smtp_server,
    stop_sender,
    text_part,
)


def change(client, current=PASSWORD, new=NEW_PASSWORD, path="/account/password"):
    page = client.get("/account/password")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    return client.post(
        path, data={"csrf_token": token, "current_password": current, "password": new}
    )


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_the_page_needs_a_signed_in_user(client, user):
    response = client.get("/account/password")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_account_page_links_to_it(client, auth, user):
    auth.login()
    assert 'href="/account/password"' in client.get("/account/").get_data(as_text=True)


def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_sign_in(
    app, client, auth, user
):
    auth.login()
    before = get_user(app).password_hash
    response = change(client, current="not my password")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<title>Error: " in page and "This is not your current password." in page
    after = get_user(app)
    assert after.password_hash == before
    assert after.failed_logins == 1  # the lockout counts it, like a sign-in
    assert events(app, "password.change_failed")


def test_the_policy_refusal_shows_the_reasons_and_strength_feedback(app, client, auth, user):
    # NIST SP 800-63B rev. 4 §3.1.1.2: blocklist and context words, reasons shown to the user.
    auth.login()
    before = get_user(app).password_hash
    response = change(client, new="alice-liddell-1")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Don&#39;t use your username in your password." in page
    assert "Don&#39;t use your name in your password." in page
    assert 'id="password-strength"' in page and "Strength of the password you tried" in page
    assert 'id="error-summary"' in page and 'href="#password"' in page
    response = change(client, new="password123")
    assert "one of the most common passwords" in response.get_data(as_text=True)
    assert get_user(app).password_hash == before
    assert not events(app, "password.changed")


def test_the_form_allows_paste_long_passwords_and_has_a_show_toggle(client, auth, user):
    auth.login()
    page = client.get("/account/password").get_data(as_text=True)
    assert "onpaste" not in page and "maxlength" not in page
    assert 'autocomplete="new-password"' in page and 'autocomplete="current-password"' in page
    # The toggle is a real button, hidden until password.js runs (a plain field without JS).
    assert 'class="show-password"' in page and 'aria-pressed="false"' in page and "hidden" in page


def test_a_64_character_password_is_accepted(app, client, auth, user):
    # NIST SP 800-63B rev. 4 §3.1.1.2: at least 64 characters SHALL be permitted.
    auth.login()
    long_one = "Ünïcödé pässwörds are fine " * 3
    assert len(long_one) >= 64
    response = change(client, new=long_one[:80])
    assert response.status_code == 302
    assert Auth(client.application.test_client()).login(password=long_one[:80]).status_code == 302


def test_a_change_ends_the_other_sessions_keeps_this_one_and_mails_a_notice(
    app,
    client,
    auth,
    user,
    oauth_client,
    mailbox,  # noqa: F811
):
    other = Auth(app.test_client())
    other.login()
    theirs = other.tokens(oauth_client, scope="openid")
    offline = other.tokens(oauth_client, scope="openid offline_access")
    auth.login()
    response = change(client)
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    # This browser stays signed in; the other one is signed out and its tokens are revoked.
    assert client.get("/account/").status_code == 200
    assert other.client.get("/account/").status_code == 302
    assert client.get("/userinfo", headers=bearer(theirs["access_token"])).status_code == 401
    # offline_access refresh tokens outlive sessions (OIDC Core §11), as at sign-out.
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": offline["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    # The new password works, the old one does not.
    assert Auth(app.test_client()).login(password=NEW_PASSWORD).status_code == 302
    assert Auth(app.test_client()).login(password=PASSWORD).status_code == 401
    (event,) = events(app, "password.changed")
    assert event.actor == user.sub and event.details["sessions_ended"] == 1
    # (The sign-ins from new browsers were mailed too: the new-device notice.)
    (message,) = [m for m in deliver(app, mailbox) if "password" in m["Subject"]]
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your password was changed"
    body = text_part(message)
    assert "alice" in body and "http://localhost/password/forgot" in body
    assert NEW_PASSWORD not in message.as_string() and PASSWORD not in message.as_string()


def test_tokens_issued_in_this_session_stay(app, client, auth, user, oauth_client):
    auth.login()
    mine = auth.tokens(oauth_client, scope="openid")
    assert change(client).status_code == 302
    assert client.get("/userinfo", headers=bearer(mine["access_token"])).status_code == 200
    with app.app_context():
        assert db.session().query(Token).filter(Token.revoked_at.is_not(None)).count() == 0


def test_the_form_needs_its_csrf_token(app, client, auth, user):
    auth.login()
    response = client.post(
        "/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD}
    )
    assert csrf_refused(response)
    assert Auth(app.test_client()).login(password=PASSWORD).status_code == 302


def test_no_open_redirect_through_next(client, auth, user):
    auth.login()
    response = change(client, path="/account/password?next=https://evil.example/")
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
