"""Changing the email address (issue 14, flows 3 and 7): the old address stays until the new
one is verified by its link, and the old address is told of the change. By the user (account
page, current password required) and by an admin."""

from __future__ import annotations

from tests.factories import PASSWORD
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

NEW = "alice@new.example"


def confirm(client, url: str):
    page = client.get(url)
    assert page.status_code == 200
    return client.post(
        "/account/verify",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "token": token_of(url)},
    )


def change(client, address=NEW, password=PASSWORD):
    return form(client, "/account/email", {"email": address, "password": password})


def verified_alice(factory):
    return factory.user(
        username="alice", email="alice@example.com", email_verified=True, name="Alice Liddell"
    )


def test_the_old_address_stays_until_the_new_one_is_verified(
    app, client, auth, factory, mailbox, oauth_client
):
    alice = verified_alice(factory)
    auth.login()
    response = change(client)
    assert response.status_code == 302
    page = client.get("/account/")
    assert f"Waiting for confirmation: {NEW}" in page.get_data(as_text=True)

    # Not yet: the account, the sign-in and the claims still use the old, verified address.
    row = user_row(app, "alice")
    assert (row.email, row.email_verified) == ("alice@example.com", True)
    id_token, userinfo = claims_of(client, auth, oauth_client)
    assert userinfo["email"] == id_token["email"] == "alice@example.com"
    assert userinfo["email_verified"] is True
    assert [e.target for e in audit_events(app, "email.change_requested")] == [alice.sub]

    (message,) = deliver(app, mailbox)
    assert message["To"] == NEW
    assert confirm(client, link_in(message, "/account/verify")).status_code == 200

    row = user_row(app, "alice")
    assert (row.email, row.email_verified) == (NEW, True)
    id_token, userinfo = claims_of(client, auth, oauth_client)
    assert userinfo["email"] == id_token["email"] == NEW and id_token["email_verified"] is True
    # Sign-in by address follows the change.
    auth.logout()
    assert auth.login("alice@example.com").status_code == 401
    assert auth.login(NEW).status_code == 302

    # Flow 7: the old address is told, the new one named, no link in it.
    notice = deliver(app, mailbox)[1]
    assert notice["To"] == "alice@example.com"
    assert notice["Subject"] == "Your email address was changed"
    text = notice.get_body(("plain",)).get_content()
    assert NEW in text and "token=" not in text
    (event,) = audit_events(app, "email.changed")
    assert event.actor == alice.sub


def test_the_current_password_is_required(app, client, auth, factory, mailbox):
    verified_alice(factory)
    auth.login()
    response = change(client, password="not my password")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<title>Error: " in html and 'id="error-summary"' in html
    assert "This is not your current password." in html
    assert deliver(app, mailbox) == [] and link_rows(app, "verify") == []
    assert [e.details["reason"] for e in audit_events(app, "email.change_refused")] == ["password"]


def test_changing_needs_a_signed_in_user_and_the_csrf_token(app, client, auth, factory):
    verified_alice(factory)
    assert client.get("/account/email").status_code == 302  # to the sign-in page
    auth.login()
    response = client.post("/account/email", data={"email": NEW, "password": PASSWORD})
    assert csrf_refused(response)
    assert link_rows(app, "verify") == []


def test_a_taken_address_gets_the_same_answer_and_a_notice_instead_of_a_link(
    app, client, auth, factory, mailbox
):
    verified_alice(factory)
    factory.user(username="bob", email="bob@example.com")
    auth.login()
    taken = change(client, "bob@example.com")
    free = change(client, NEW)
    assert taken.status_code == free.status_code == 302
    assert taken.headers["Location"] == free.headers["Location"]
    first, second = deliver(app, mailbox)
    # The owner of the taken address learns it; the requester learns nothing new.
    assert first["To"] == "bob@example.com"
    assert first["Subject"] == "Your email address is already in use"
    assert "token=" not in first.get_body(("plain",)).get_content()
    assert second["To"] == NEW
    assert user_row(app, "bob").email == "bob@example.com"


def test_an_address_taken_meanwhile_is_not_stolen(app, client, auth, factory, mailbox):
    verified_alice(factory)
    auth.login()
    change(client, NEW)
    url = link_in(deliver(app, mailbox)[0], "/account/verify")
    factory.user(username="mallory", email=NEW)
    page = client.get(url)
    response = client.post(
        "/account/verify",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "token": token_of(url)},
    )
    assert response.status_code == 404
    assert user_row(app, "alice").email == "alice@example.com"


def test_a_second_change_revokes_the_first_link(app, client, auth, factory, mailbox):
    verified_alice(factory)
    auth.login()
    change(client, "first@new.example")
    change(client, "second@new.example")
    first, second = deliver(app, mailbox)
    assert client.get(link_in(first, "/account/verify")).status_code == 404
    confirm(client, link_in(second, "/account/verify"))
    assert user_row(app, "alice").email == "second@new.example"


def test_an_admin_change_also_waits_for_the_new_address(
    app, client, admin_client, admin, factory, mailbox
):
    alice = verified_alice(factory)
    edit = admin_client.get(f"/admin/users/{alice.id}/edit")
    response = admin_client.post(
        f"/admin/users/{alice.id}/edit",
        data={
            "csrf_token": csrf_token(edit.get_data(as_text=True)),
            "name": "Alice Liddell",
            "email": NEW,
            "email_verified": "y",  # the box counts only for an unchanged address
        },
    )
    assert response.status_code == 302
    row = user_row(app, "alice")
    assert (row.email, row.email_verified) == ("alice@example.com", True)
    detail = admin_client.get(f"/admin/users/{alice.id}").get_data(as_text=True)
    assert "Pending new address" in detail and NEW in detail
    assert [e.actor for e in audit_events(app, "email.change_requested")] == [admin.sub]

    (message,) = deliver(app, mailbox)
    assert message["To"] == NEW
    confirm(client, link_in(message, "/account/verify"))
    assert user_row(app, "alice").email == NEW
    assert deliver(app, mailbox)[1]["To"] == "alice@example.com"  # the old address is told
