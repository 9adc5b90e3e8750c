"""Email verification (issue 14, flow 3): after an admin creates a user with an address, a
single-use link is mailed; following it sets email_verified, which ID tokens and UserInfo
release (OIDC Core §5.1: true only when the provider took measures to ensure the address is
controlled by the End-User)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from idp import db
from idp.cli import cli
from idp.models import AccountLink, secret_hash, utcnow
from tests.helpers import csrf_refused, csrf_token

from .mail_support import *  # noqa: F403
from .mail_support import (
    audit_events,
    claims_of,
    deliver,
    form,
    link_in,
    link_rows,
    token_of,
    user_row,
)

NEW_USER = {
    "username": "bob",
    "email": "bob@example.com",
    "name": "Bob",
    "password": "",
    "confirm": "",
}


def create_bob(admin_client) -> None:
    response = form(admin_client, "/admin/users/new", NEW_USER)
    assert response.status_code == 302, response.get_data(as_text=True)


def verify(client, url: str):
    """Follow the link (GET shows a button), then press it (POST)."""
    page = client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return client.post(
        "/account/verify", data={"csrf_token": csrf_token(html), "token": token_of(url)}
    )


def test_admin_created_user_gets_a_link_that_verifies_the_address(
    app, client, admin_client, admin, mailbox
):
    create_bob(admin_client)
    assert user_row(app, "bob").email_verified is False

    (message,) = deliver(app, mailbox)
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "Confirm your email address"
    url = link_in(message, "/account/verify")
    assert url.startswith("http://localhost/account/verify?token=")  # built from ISSUER

    page = client.get(url)
    assert page.status_code == 200
    assert "bob@example.com" in page.get_data(as_text=True)
    # A GET only shows the button: a mail scanner that fetches the link verifies nothing.
    assert user_row(app, "bob").email_verified is False
    # The page's URL carries the secret: no Referer may leak it (issue 14).
    assert page.headers["Referrer-Policy"] == "no-referrer"

    done = verify(client, url)
    assert done.status_code == 200
    assert "bob@example.com is now the confirmed address" in done.get_data(as_text=True)
    assert user_row(app, "bob").email_verified is True
    (event,) = audit_events(app, "email.verified")
    assert event.target == user_row(app, "bob").sub
    assert [e.actor for e in audit_events(app, "email.verification_sent")] == [admin.sub]


def test_a_verification_link_works_once(app, client, admin_client, mailbox):
    create_bob(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/verify")
    assert verify(client, url).status_code == 200
    page = client.get(url)
    assert page.status_code == 404
    assert "expired or was already used" in page.get_data(as_text=True)
    again = client.post(
        "/account/verify",
        data={
            "csrf_token": csrf_token(client.get("/login").get_data(as_text=True)),
            "token": token_of(url),
        },
    )
    assert again.status_code == 404


def test_only_the_hash_of_the_link_is_stored(app, admin_client, mailbox):
    create_bob(admin_client)
    token = token_of(link_in(deliver(app, mailbox)[0], "/account/verify"))
    (row,) = link_rows(app, "verify")
    assert row.token_hash == secret_hash(token) and token not in (row.token_hash, row.email)


def test_an_expired_link_verifies_nothing(app, client, admin_client, mailbox):
    create_bob(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/verify")
    with app.app_context():
        db.session().execute(update(AccountLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session().commit()
    assert client.get(url).status_code == 404
    assert user_row(app, "bob").email_verified is False


@pytest.mark.config(EMAIL_VERIFY_TTL=3600)
def test_expiry_is_configurable(app, admin_client, mailbox):
    create_bob(admin_client)
    (row,) = link_rows(app, "verify")
    assert timedelta(minutes=59) < row.expires_at - row.created_at <= timedelta(minutes=61)
    assert "for 1 hour" in deliver(app, mailbox)[0].get_body(("plain",)).get_content()


def test_a_new_link_revokes_the_older_ones(app, client, admin_client, mailbox):
    create_bob(admin_client)
    bob = user_row(app, "bob")
    response = form(
        admin_client,
        f"/admin/users/{bob.id}/verification/send",
        {},
        get_url=f"/admin/users/{bob.id}",
    )
    assert response.status_code == 302
    first, second = deliver(app, mailbox)
    old, new = link_in(first, "/account/verify"), link_in(second, "/account/verify")
    assert client.get(old).status_code == 404
    assert verify(client, new).status_code == 200
    assert user_row(app, "bob").email_verified is True


def test_claims_say_verified_only_after_the_link(
    app, client, auth, admin_client, mailbox, factory, oauth_client
):
    factory.user(username="carol", email="carol@example.com")  # unverified, as created
    id_token, userinfo = claims_of(client, auth, oauth_client, "carol")
    assert id_token["email"] == userinfo["email"] == "carol@example.com"
    assert id_token["email_verified"] is False and userinfo["email_verified"] is False

    carol = user_row(app, "carol")
    form(
        admin_client,
        f"/admin/users/{carol.id}/verification/send",
        {},
        get_url=f"/admin/users/{carol.id}",
    )
    verify(client, link_in(deliver(app, mailbox)[0], "/account/verify"))
    id_token, userinfo = claims_of(client, auth, oauth_client, "carol")
    assert id_token["email_verified"] is True and userinfo["email_verified"] is True


def test_the_signed_in_user_can_ask_for_a_new_link(app, client, auth, factory, mailbox):
    factory.user(username="carol", email="carol@example.com")
    auth.login("carol")
    account = client.get("/account/")
    assert "not verified" in account.get_data(as_text=True)
    token = csrf_token(account.get_data(as_text=True))
    assert client.post("/account/email/verify", data={"csrf_token": token}).status_code == 302
    (message,) = deliver(app, mailbox)
    assert message["To"] == "carol@example.com"
    verify(client, link_in(message, "/account/verify"))
    assert user_row(app, "carol").email_verified is True


def test_confirming_needs_the_csrf_token(app, client, admin_client, mailbox):
    create_bob(admin_client)
    url = link_in(deliver(app, mailbox)[0], "/account/verify")
    response = client.post("/account/verify", data={"token": token_of(url)})
    assert csrf_refused(response)
    assert user_row(app, "bob").email_verified is False


def test_cli_create_with_an_email_mails_a_link(app, runner, mailbox):
    result = runner.invoke(
        cli, ["users", "create", "--username", "dave", "--email", "dave@example.com", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["email"] == "dave@example.com"
    (message,) = deliver(app, mailbox)
    assert message["To"] == "dave@example.com"
    link_in(message, "/account/verify")
