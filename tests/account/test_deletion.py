"""Asking for one's account to be deleted (issue 14, flow 8): the user asks with their
password, an admin approves (the admin delete path: sessions ended, tokens revoked) or
rejects; the user can cancel; every step is audited and mailed (a real SMTP server)."""

# ruff: noqa: F811  (the mail fixtures, imported, are parameters of the tests)
from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.models import DeletionRequest, Token, UserSession

from ..factories import PASSWORD
from ..helpers import Auth, csrf_refused, csrf_token
from ..mail.conftest import instance, mailbox, smtp_server, stop_sender  # noqa: F401
from .own import delivered, events, mail_server, stored_user, text_of, token_from  # noqa: F401


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


@pytest.fixture
def admin(app, root):
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser


@pytest.fixture
def alice(app, client, auth, user, mail_server):
    assert auth.login().status_code == 302
    return user


def ask(client, password=PASSWORD):
    token = token_from(client, "/account/delete")
    return client.post("/account/delete", data={"csrf_token": token, "password": password})


def requests_of(app, user_id: int) -> list[DeletionRequest]:
    with app.app_context():
        rows = list(
            db.session().scalars(select(DeletionRequest).where(DeletionRequest.user_id == user_id))
        )
        for row in rows:
            db.session().expunge(row)
        return rows


def decide(admin, request_id: int, decision: str):
    url = f"/admin/deletions/{request_id}/{decision}"
    page = admin.get(url)
    assert page.status_code == 200
    return admin.post(url, data={"csrf_token": csrf_token(page.text)})


def test_the_confirmation_page_explains_and_asks_for_the_password(client, alice):
    page = client.get("/account/delete")
    assert page.status_code == 200
    assert "<title>Delete your account?" in page.text
    assert 'type="password"' in page.text and "(required)" in page.text
    assert 'autocomplete="current-password"' in page.text
    assert "/account/delete" in client.get("/account/").text


def test_a_wrong_password_is_refused_and_nothing_is_asked(app, client, alice, mailbox):
    response = ask(client, password="not my password")
    assert response.status_code == 400
    assert "<title>Error: " in response.text and 'id="error-summary"' in response.text
    assert 'href="#password"' in response.text and "not your current password" in response.text
    assert requests_of(app, alice.id) == []
    assert events(app, "account.deletion_requested") == []
    assert events(app, "account.deletion_refused")[0].details == {"reason": "wrong password"}
    empty = ask(client, password="")
    assert empty.status_code == 400 and "Enter your current password." in empty.text
    assert delivered(app, mailbox) == []


@pytest.mark.config(LOCKOUT_THRESHOLD=3)
def test_wrong_passwords_here_count_toward_the_sign_in_lockout(app, client, alice):
    # NIST SP 800-63B §5.2.2: guesses are limited wherever the password is checked.
    for _ in range(3):
        assert ask(client, password="guess").status_code == 400
    assert stored_user(app, "alice").locked_until is not None
    response = ask(client)  # now even the right password is refused
    assert response.status_code == 400 and requests_of(app, alice.id) == []
    assert events(app, "account.deletion_refused")[-1].details == {"reason": "locked"}


def test_asking_and_cancelling_need_the_csrf_token(app, client, alice):
    assert csrf_refused(client.post("/account/delete", data={"password": PASSWORD}))
    assert requests_of(app, alice.id) == []
    assert ask(client).status_code == 302
    assert csrf_refused(client.post("/account/delete/cancel", data={}))
    assert requests_of(app, alice.id)[0].status == "pending"


def test_the_request_is_recorded_audited_and_mailed(app, client, alice, mailbox):
    response = ask(client)
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    (row,) = requests_of(app, alice.id)
    assert row.status == "pending" and row.decided_at is None
    (event,) = events(app, "account.deletion_requested")
    assert event.actor == alice.sub
    (message,) = delivered(app, mailbox)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your request to delete your account"
    assert "cancel the request" in text_of(message) and "http://localhost/account/" in text_of(
        message
    )
    # The account page and the confirmation page show the pending request, not a new form.
    assert "Cancel the deletion request" in client.get("/account/").text
    page = client.get("/account/delete")
    assert "is pending" in page.text and 'type="password"' not in page.text
    assert ask(client).status_code == 200  # asking twice changes nothing
    assert len(requests_of(app, alice.id)) == 1


def test_the_user_can_cancel_a_pending_request(app, client, alice, admin):
    ask(client)
    token = token_from(client)
    response = client.post("/account/delete/cancel", data={"csrf_token": token})
    assert response.status_code == 302
    (row,) = requests_of(app, alice.id)
    assert row.status == "cancelled" and row.decided_at is not None
    assert events(app, "account.deletion_cancelled")[0].actor == alice.sub
    assert "No pending requests." in admin.get("/admin/deletions").text
    assert admin.get(f"/admin/deletions/{row.id}/approve").status_code == 302  # not pending
    assert stored_user(app, "alice") is not None
    # Asking again is possible once the earlier request is closed.
    assert ask(client).status_code == 302
    assert [r.status for r in requests_of(app, alice.id)] == ["cancelled", "pending"]


def test_the_admin_sees_pending_requests_on_a_list_and_on_the_user(app, client, alice, admin):
    ask(client)
    (row,) = requests_of(app, alice.id)
    users = admin.get("/admin/users")
    assert "1 user asked for their account to be deleted" in users.text
    assert 'href="/admin/deletions"' in users.text
    listing = admin.get("/admin/deletions")
    assert listing.status_code == 200 and "alice" in listing.text
    assert f"/admin/deletions/{row.id}/approve" in listing.text
    detail = admin.get(f"/admin/users/{alice.id}")
    assert "Deletion requested" in detail.text
    assert f"/admin/deletions/{row.id}/reject" in detail.text
    # Approval asks first (GET confirmation page), and acts only on a POST with CSRF.
    confirm = admin.get(f"/admin/deletions/{row.id}/approve")
    assert "Delete the account of alice" in confirm.text
    assert stored_user(app, "alice") is not None
    assert csrf_refused(admin.post(f"/admin/deletions/{row.id}/approve", data={}))
    assert stored_user(app, "alice") is not None


def test_approval_deletes_the_account_ends_sessions_revokes_tokens_and_mails(
    app, client, auth, alice, admin, oauth_client, mailbox
):
    tokens = auth.tokens(oauth_client, scope="openid email offline_access")
    ask(client)
    (row,) = requests_of(app, alice.id)
    response = decide(admin, row.id, "approve")
    assert response.status_code == 302

    assert stored_user(app, "alice") is None
    with app.app_context():
        s = db.session()
        assert s.scalars(select(Token).where(Token.user_id == alice.id)).all() == []
        assert s.scalars(select(UserSession).where(UserSession.user_id == alice.id)).all() == []
    # RFC 6750 §3.1: the access token no longer works.
    userinfo = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert userinfo.status_code == 401
    assert client.get("/account/").status_code == 302  # signed out
    (approved,) = events(app, "account.deletion_approved")
    assert approved.target == alice.sub and approved.actor == stored_user(app, "root").sub
    (deleted,) = events(app, "admin.user.deleted")
    assert deleted.target == alice.sub and deleted.details["requested_by_user"] is True
    assert deleted.details["sessions_ended"] >= 1
    messages = delivered(app, mailbox)
    assert [m["Subject"] for m in messages] == [
        "Your request to delete your account",
        "Your account was deleted",
    ]
    assert "was approved" in text_of(messages[1])


def test_rejection_keeps_the_account_and_mails_the_user(app, client, alice, admin, mailbox):
    ask(client)
    (row,) = requests_of(app, alice.id)
    assert decide(admin, row.id, "reject").status_code == 302
    (row,) = requests_of(app, alice.id)
    assert row.status == "rejected" and row.decided_by == "root"
    assert stored_user(app, "alice") is not None
    assert client.get("/account/").status_code == 200  # still signed in
    assert events(app, "account.deletion_rejected")[0].target == alice.sub
    subjects = [m["Subject"] for m in delivered(app, mailbox)]
    assert subjects[-1] == "Your deletion request was declined"
    # Decided once: a second decision finds nothing pending.
    again = admin.post(f"/admin/deletions/{row.id}/approve", data={"csrf_token": token_from(admin)})
    assert again.status_code == 302 and stored_user(app, "alice") is not None


def test_the_last_admin_is_not_deleted_even_on_request(app, mail_server, root, admin):
    assert ask(admin).status_code == 302
    (row,) = requests_of(app, root.id)
    response = decide(admin, row.id, "approve")
    assert response.status_code == 302
    assert stored_user(app, "root") is not None
    assert requests_of(app, root.id)[0].status == "pending"
    assert events(app, "admin.user.deleted") == []


def test_only_admins_decide(app, client, alice, factory):
    ask(client)
    (row,) = requests_of(app, alice.id)
    assert client.get("/admin/deletions").status_code == 403
    token = token_from(client)
    assert (
        client.post(f"/admin/deletions/{row.id}/approve", data={"csrf_token": token}).status_code
        == 403
    )
    assert stored_user(app, "alice") is not None
