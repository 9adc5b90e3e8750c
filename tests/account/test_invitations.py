"""Invitations (issue 14, flow 4): the admin UI and `idp users invite` create an account
without a password and mail a single-use link to choose one (NIST SP 800-63B §3.1.1.2
policy); accepting verifies the address; invitations expire and can be resent or revoked."""

from __future__ import annotations

import json
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import update

from idp import db
from idp.cli import cli
from idp.models import AccountLink, secret_hash, utcnow
from tests.helpers import csrf_refused, csrf_token

from .mail_support import *  # noqa: F403
from .mail_support import (
    audit_events,
    deliver,
    form,
    link_in,
    link_rows,
    token_of,
    user_row,
)

GOOD_PASSWORD = "violet tram under the moon"


def invite(admin_client, email="bob@example.com", username="bob", name="Bob Stone"):
    return form(
        admin_client, "/admin/users/invite", {"email": email, "username": username, "name": name}
    )


def accept(client, url: str, password=GOOD_PASSWORD, confirm=None):
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return client.post(
        "/account/invitation",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "token": token_of(url),
            "password": password,
            "confirm": password if confirm is None else confirm,
        },
    )


def detail(admin_client, username="bob") -> str:
    user = user_row(admin_client.application, username)
    return admin_client.get(f"/admin/users/{user.id}").get_data(as_text=True)


def test_an_invited_user_chooses_a_password_and_signs_in(
    app, client, auth, admin_client, admin, mailbox
):
    response = invite(admin_client)
    assert response.status_code == 302
    bob = user_row(app, "bob")
    assert bob.password_hash is None and bob.email_verified is False
    assert auth.login("bob", GOOD_PASSWORD).status_code == 401  # nothing to sign in with yet
    assert "pending" in detail(admin_client)

    (message,) = deliver(app, mailbox)
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "You are invited to create your account"
    url = link_in(message, "/account/invitation")
    assert url.startswith("http://localhost/account/invitation?token=")
    page = client.get(url)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "Your username is <strong>bob</strong>" in page.get_data(as_text=True)

    done = accept(client, url)
    assert done.status_code == 302
    assert done.headers["Location"] == "/login?login_hint=bob"  # a local path, nothing else
    bob = user_row(app, "bob")
    assert bob.password_hash and bob.email_verified is True  # the link proved the address
    assert auth.login("bob", GOOD_PASSWORD).status_code == 302
    assert "accepted" in detail(admin_client)
    assert [e.actor for e in audit_events(app, "invitation.sent")] == [admin.sub]
    assert [e.actor for e in audit_events(app, "invitation.accepted")] == [bob.sub]


@pytest.mark.parametrize(
    "password, reason",
    [
        ("short", "Use at least 8 characters."),
        ("password123", "one of the most common passwords"),
        ("bobstone-rules", "Don't use your name in your password."),
    ],
)
def test_the_password_policy_applies_and_says_why(
    app, client, admin_client, mailbox, password, reason
):
    # NIST SP 800-63B §3.1.1.2: length, blocklist and context-specific words.
    invite(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    response = accept(client, url, password=password)
    assert response.status_code == 400
    html = unescape(response.get_data(as_text=True))
    assert "<title>Error: " in html and 'id="error-summary"' in html and reason in html
    assert user_row(app, "bob").password_hash is None
    assert accept(client, url).status_code == 302  # the link still works after a refusal


def test_an_invitation_link_works_once_and_is_stored_hashed(app, client, admin_client, mailbox):
    invite(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    (row,) = link_rows(app, "invite")
    assert row.token_hash == secret_hash(token_of(url))
    assert accept(client, url).status_code == 302
    assert client.get(url).status_code == 404
    html = client.get("/login").get_data(as_text=True)
    again = client.post(
        "/account/invitation",
        data={
            "csrf_token": csrf_token(html),
            "token": token_of(url),
            "password": "another good passphrase",
            "confirm": "another good passphrase",
        },
    )
    assert again.status_code == 404


def test_accepting_needs_the_csrf_token(app, client, admin_client, mailbox):
    invite(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    response = client.post(
        "/account/invitation",
        data={"token": token_of(url), "password": GOOD_PASSWORD, "confirm": GOOD_PASSWORD},
    )
    assert csrf_refused(response)
    assert user_row(app, "bob").password_hash is None


def test_an_expired_invitation_is_refused_and_shown_as_expired(app, client, admin_client, mailbox):
    invite(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    with app.app_context():
        db.session().execute(update(AccountLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session().commit()
    assert client.get(url).status_code == 404
    assert "expired" in detail(admin_client)
    assert "Invitation expired" in admin_client.get("/admin/users").get_data(as_text=True)


@pytest.mark.config(INVITATION_TTL=2 * 86400)
def test_the_invitation_lifetime_is_configurable(app, admin_client, mailbox):
    invite(admin_client)
    (row,) = link_rows(app, "invite")
    assert row.expires_at - row.created_at == pytest.approx(
        timedelta(days=2), abs=timedelta(seconds=60)
    )
    assert "for 2 days" in deliver(app, mailbox)[0].get_body(("plain",)).get_content()


def test_resending_sends_a_new_link_and_kills_the_old_one(
    app, client, admin_client, admin, mailbox
):
    invite(admin_client)
    bob = user_row(app, "bob")
    response = form(
        admin_client,
        f"/admin/users/{bob.id}/invitation/resend",
        {},
        get_url=f"/admin/users/{bob.id}",
    )
    assert response.status_code == 302
    first, second = deliver(app, mailbox)
    assert client.get(link_in(first, "/account/invitation")).status_code == 404
    assert accept(client, link_in(second, "/account/invitation")).status_code == 302
    assert [e.actor for e in audit_events(app, "invitation.resent")] == [admin.sub]


def test_revoking_asks_first_then_kills_the_link(app, client, admin_client, admin, mailbox):
    invite(admin_client)
    bob = user_row(app, "bob")
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    ask = admin_client.get(f"/admin/users/{bob.id}/invitation/revoke")
    assert ask.status_code == 200
    assert "Revoke the invitation of bob?" in ask.get_data(as_text=True)
    assert client.get(url).status_code == 200  # asking changed nothing

    done = admin_client.post(
        f"/admin/users/{bob.id}/invitation/revoke",
        data={"csrf_token": csrf_token(ask.get_data(as_text=True))},
    )
    assert done.status_code == 302
    assert client.get(url).status_code == 404
    assert "revoked" in detail(admin_client)
    assert [e.actor for e in audit_events(app, "invitation.revoked")] == [admin.sub]


def test_revoking_without_csrf_is_refused(app, admin_client, mailbox):
    invite(admin_client)
    bob = user_row(app, "bob")
    assert csrf_refused(admin_client.post(f"/admin/users/{bob.id}/invitation/revoke"))
    assert [r.state for r in link_rows(app, "invite")] == ["pending"]


def test_the_invite_form_refuses_taken_names_and_bad_addresses(app, admin_client, admin, mailbox):
    taken = invite(admin_client, email="ROOT@example.com", username="root")
    assert taken.status_code == 400
    html = taken.get_data(as_text=True)
    assert "Another user already has this username." in html
    assert "Another user already has this email." in html
    bad = invite(admin_client, email="not an address")
    assert bad.status_code == 400 and 'id="error-summary"' in bad.get_data(as_text=True)
    assert deliver(app, mailbox) == []


def test_cli_invite(app, runner, client, mailbox):
    result = runner.invoke(cli, ["users", "invite", "--email", "erin@example.com", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["username"] == "erin" and data["email"] == "erin@example.com"
    (message,) = deliver(app, mailbox)
    assert message["To"] == "erin@example.com"
    assert accept(client, link_in(message, "/account/invitation")).status_code == 302
    assert user_row(app, "erin").email_verified is True
    assert [e.actor for e in audit_events(app, "invitation.sent")] == ["cli"]

    again = runner.invoke(cli, ["users", "invite", "--email", "ERIN@example.com"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_a_password_set_by_an_admin_ends_the_invitation(app, client, admin_client, mailbox):
    invite(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/invitation")
    bob = user_row(app, "bob")
    response = form(
        admin_client,
        f"/admin/users/{bob.id}/password",
        {"password": "admin chosen passphrase", "confirm": "admin chosen passphrase"},
    )
    assert response.status_code == 302
    assert client.get(url).status_code == 404  # it would overwrite the admin's password
