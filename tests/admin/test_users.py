"""Admin: users. Create, profile claims, password, disable/enable, unlock, admin role, groups,
sessions, consents, tokens, delete; the last admin stays; every change is audited."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import insert, select

from idp import db
from idp.models import AuditEvent, Consent, Group, MailMessage, Token, User, UserSession, utcnow

from ..factories import PASSWORD
from ..helpers import Auth, basic_auth
from .support import events, post, row, rows, text_of, token_of, user_row

NEW_PASSWORD = "a new passphrase for bob"


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def userinfo_status(client, access_token: str) -> int:
    return client.get("/userinfo", headers=bearer(access_token)).status_code


def signed_in(browser) -> bool:
    return browser.get("/account/").status_code == 200


@pytest.fixture
def alice(app, user, oauth_client):
    """Alice signed in with a live session and a token family (access + refresh)."""
    browser = app.test_client()
    auth = Auth(browser)
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile email offline_access")
    return browser, tokens


def assert_no_secret_in_audit(app, *secrets):
    with app.app_context():
        for event in db.session().query(AuditEvent):
            stored = json.dumps(event.details) + (event.actor or "") + (event.target or "")
            for secret in secrets:
                assert secret not in stored, event.event


# --- create ---------------------------------------------------------------------------------


def test_admin_creates_a_user_who_can_then_sign_in(app, admin_client, admin):
    response = post(
        admin_client,
        "/admin/users/new",
        {
            "username": "bob",
            "email": "bob@example.com",
            "name": "Bob Builder",
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    bob = user_row(app, "bob")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == f"/admin/users/{bob.id}"
    assert bob.email == "bob@example.com" and bob.name == "Bob Builder"
    assert bob.password_hash.startswith("$argon2id$") and not bob.is_admin
    [event] = events(app, "admin.user.created")
    assert (event.actor, event.target) == (admin.sub, bob.sub)
    assert event.details["after"]["username"] == "bob" and event.details["password_set"] is True
    assert_no_secret_in_audit(app, NEW_PASSWORD, bob.password_hash)

    bob_browser = app.test_client()
    assert Auth(bob_browser).login("bob", NEW_PASSWORD).status_code == 302
    assert signed_in(bob_browser)


def test_a_user_created_without_password_cannot_sign_in_until_one_is_set(app, admin_client):
    assert post(admin_client, "/admin/users/new", {"username": "carol"}).status_code == 302
    assert user_row(app, "carol").password_hash is None
    assert Auth(app.test_client()).login("carol", "").status_code == 400
    assert Auth(app.test_client()).login("carol", PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "ALICE"},  # usernames are unique ignoring case
        {"username": "alice2", "email": "Alice@Example.com"},  # sign-in ignores email case
    ],
)
def test_creating_a_user_with_a_taken_username_or_email_is_refused(app, admin_client, user, fields):
    response = post(admin_client, "/admin/users/new", fields)
    assert response.status_code == 400
    assert "Another user already has this" in response.text
    assert len(rows(app, User)) == 2  # root and alice
    assert events(app, "admin.user.created") == []


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"password": "short", "confirm": "short"}, "at least 8"),
        ({"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"}, "do not match"),
        ({"username": "bad name!"}, "Letters, digits"),
        ({"email": "not-an-email"}, "Invalid email"),
    ],
)
def test_create_user_form_rejects_invalid_input(app, admin_client, fields, message):
    response = post(admin_client, "/admin/users/new", {"username": "bob", **fields})
    assert response.status_code == 400
    assert message.lower() in response.text.lower()
    assert len(rows(app, User)) == 1


# --- profile claims -------------------------------------------------------------------------


PROFILE = {
    "name": "Alice Pleasance Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "email": "alice@wonderland.example",
    "email_verified": "y",
    "phone_number": "+441865270000",
    "phone_number_verified": "y",
    "street_address": "Christ Church",
    "locality": "Oxford",
    "postal_code": "OX1 1DP",
    "country": "UK",
    "locale": "en-GB",
    "zoneinfo": "Europe/London",
    "picture": "https://img.example/alice.png",
}


def test_admin_edits_profile_claims_and_userinfo_releases_them(
    app, client, admin_client, admin, user, auth, oauth_client
):
    # OIDC Core §5.1 standard claims, released by scope (§5.4) at UserInfo (§5.3).
    response = post(admin_client, f"/admin/users/{user.id}/edit", PROFILE)
    assert response.status_code == 302
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid profile email phone address")
    claims = client.get("/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert claims["given_name"] == "Alice" and claims["family_name"] == "Liddell"
    # Issue 14: a changed address waits for its owner to follow the mailed link (tests/
    # account/test_email_change.py); until then the old, unverified one is released.
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is False
    assert claims["phone_number"] == "+441865270000" and claims["phone_number_verified"] is True
    assert claims["address"] == {
        "street_address": "Christ Church",
        "locality": "Oxford",
        "postal_code": "OX1 1DP",
        "country": "UK",
    }
    assert (claims["locale"], claims["zoneinfo"]) == ("en-GB", "Europe/London")
    assert claims["picture"] == "https://img.example/alice.png"

    [event] = events(app, "admin.user.updated")
    assert (event.actor, event.target) == (admin.sub, user.sub)
    # Only what changed, before and after.
    assert "email" not in event.details["after"]  # not changed yet: see above
    assert event.details["before"]["name"] == "Alice Liddell"
    assert "username" not in event.details["after"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("phone_number", "01865 270000"),  # not E.164
        ("zoneinfo", "Mars/Olympus_Mons"),
        ("picture", "javascript:alert(1)"),
        ("locale", "english please"),
        ("email", "root@EXAMPLE.com"),  # the admin's address
    ],
)
def test_profile_form_refuses_invalid_claim_values(app, admin_client, admin, user, field, value):
    response = post(admin_client, f"/admin/users/{user.id}/edit", {**PROFILE, field: value})
    assert response.status_code == 400
    assert user_row(app, "alice").email == "alice@example.com"
    assert events(app, "admin.user.updated") == []


def test_clearing_claims_removes_them(app, admin_client, user):
    post(admin_client, f"/admin/users/{user.id}/edit", PROFILE)
    cleared = dict.fromkeys(PROFILE, "")  # what a browser sends for an emptied form
    del cleared["email_verified"], cleared["phone_number_verified"]  # unticked boxes
    assert post(admin_client, f"/admin/users/{user.id}/edit", cleared).status_code == 302
    alice = user_row(app, "alice")
    assert alice.name is None and alice.email is None and alice.address is None
    assert alice.email_verified is False


# --- password -------------------------------------------------------------------------------


def test_setting_a_password_replaces_it_and_signs_the_user_out(app, admin_client, user, alice):
    browser, _ = alice
    response = post(
        admin_client,
        f"/admin/users/{user.id}/password",
        {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "end_sessions": "y"},
    )
    assert response.status_code == 302
    assert not signed_in(browser)
    assert Auth(app.test_client()).login("alice", PASSWORD).status_code == 401
    assert Auth(app.test_client()).login("alice", NEW_PASSWORD).status_code == 302
    [event] = events(app, "admin.user.password_set")
    assert event.details["sessions_ended"] == 1
    assert_no_secret_in_audit(app, NEW_PASSWORD)
    # Issue #14 (notifications): the user hears of every password change, an admin's too.
    with app.app_context():
        queued = db.session().scalars(select(MailMessage)).all()
    [notice] = [m for m in queued if m.subject == "Your password was changed"]
    assert notice.to_address == "alice@example.com"


def test_the_set_password_page_never_shows_a_password(app, admin_client, user):
    page = admin_client.get(f"/admin/users/{user.id}/password")
    assert page.status_code == 200
    assert user_row(app, "alice").password_hash not in page.text
    refused = post(
        admin_client,
        f"/admin/users/{user.id}/password",
        {"password": NEW_PASSWORD, "confirm": "something else"},
    )
    assert refused.status_code == 400
    assert NEW_PASSWORD not in refused.text  # a refused form is not filled back


def test_reset_password_removes_it_and_ends_sessions_and_tokens(
    app, client, admin_client, user, alice
):
    browser, tokens = alice
    assert post(admin_client, f"/admin/users/{user.id}/password/reset").status_code == 302
    assert user_row(app, "alice").password_hash is None
    assert not signed_in(browser)
    assert userinfo_status(client, tokens["access_token"]) == 401
    assert Auth(app.test_client()).login("alice", PASSWORD).status_code == 401
    [event] = events(app, "admin.user.password_reset")
    assert event.details == {"sessions_ended": 1, "tokens_revoked": 1}


# --- disable, enable, unlock ----------------------------------------------------------------


def test_disabling_a_user_stops_sign_in_and_every_token(
    app, client, admin_client, admin, user, oauth_client, alice
):
    browser, tokens = alice
    assert userinfo_status(client, tokens["access_token"]) == 200

    response = post(admin_client, f"/admin/users/{user.id}/disable")
    assert response.status_code == 302

    # RFC 6750 §3.1: the access token is now invalid_token.
    assert userinfo_status(client, tokens["access_token"]) == 401
    # RFC 6749 §5.2: the refresh token is an invalid_grant.
    refresh = Auth(client).token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    # RFC 7662 §2.2: introspection says inactive.
    introspected = client.post(
        "/introspect",
        data={"token": tokens["access_token"]},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert introspected.get_json() == {"active": False}
    # Stored: the tokens are revoked (not just refused), the session ended.
    assert all(t.revoked_at is not None for t in rows(app, Token, Token.user_id == user.id))
    [session] = rows(app, UserSession, UserSession.user_id == user.id)
    assert session.ended_at is not None and session.end_reason == "user disabled"
    assert not signed_in(browser)
    assert Auth(app.test_client()).login("alice").status_code == 401

    [event] = events(app, "admin.user.disabled")
    assert (event.actor, event.target) == (admin.sub, user.sub)
    assert event.details["before"] == {"disabled": False}
    assert event.details["after"] == {"disabled": True}
    assert (event.details["sessions_ended"], event.details["tokens_revoked"]) == (1, 1)


def test_enabling_a_user_lets_them_sign_in_again(app, admin_client, user):
    post(admin_client, f"/admin/users/{user.id}/disable")
    assert post(admin_client, f"/admin/users/{user.id}/enable").status_code == 302
    assert not user_row(app, "alice").disabled
    assert Auth(app.test_client()).login("alice").status_code == 302
    [event] = events(app, "admin.user.enabled")
    assert event.details == {"before": {"disabled": True}, "after": {"disabled": False}}


def test_unlock_clears_failed_sign_ins_and_the_lockout(app, admin_client, user):
    until = utcnow() + timedelta(hours=1)
    with app.app_context():
        session = db.session()
        locked = session.get(User, user.id)
        locked.failed_logins, locked.locked_until = 7, until
        session.commit()
    page = admin_client.get(f"/admin/users/{user.id}")
    assert "Locked until" in page.text and "Unlock" in page.text
    assert post(admin_client, f"/admin/users/{user.id}/unlock").status_code == 302
    alice = user_row(app, "alice")
    assert (alice.failed_logins, alice.locked_until) == (0, None)
    [event] = events(app, "admin.user.unlocked")
    assert event.details["before"]["failed_logins"] == 7
    assert event.details["after"] == {"failed_logins": 0, "locked_until": None}


# --- admin role and the last admin ----------------------------------------------------------


def test_admin_role_can_be_granted_and_revoked(app, admin_client, user):
    alice_browser = app.test_client()
    Auth(alice_browser).login()
    assert alice_browser.get("/admin/users").status_code == 403
    assert post(admin_client, f"/admin/users/{user.id}/admin/grant").status_code == 302
    assert alice_browser.get("/admin/users").status_code == 200
    assert post(admin_client, f"/admin/users/{user.id}/admin/revoke").status_code == 302
    assert alice_browser.get("/admin/users").status_code == 403
    assert events(app, "admin.user.admin_granted")[0].details["after"] == {"is_admin": True}
    assert events(app, "admin.user.admin_revoked")[0].details["after"] == {"is_admin": False}


@pytest.mark.parametrize("action", ["admin/revoke", "disable"])
def test_the_last_admin_cannot_remove_their_own_role_or_disable_themselves(
    app, admin_client, admin, user, action
):
    response = post(admin_client, f"/admin/users/{admin.id}/{action}")
    assert response.status_code == 302
    page = admin_client.get(response.headers["Location"])
    assert "at least one enabled administrator" in page.text
    root = user_row(app, "root")
    assert root.is_admin and not root.disabled
    assert admin_client.get("/admin/users").status_code == 200
    assert [e.event for e in rows(app, AuditEvent) if e.event.startswith("admin.")] == []


def test_the_last_admin_cannot_delete_themselves(app, admin_client, admin):
    response = post(admin_client, f"/admin/users/{admin.id}/delete", {"confirm_username": "root"})
    assert response.status_code == 302
    assert "at least one enabled administrator" in admin_client.get("/admin/users/1").text
    assert user_row(app, "root") is not None
    assert events(app, "admin.user.deleted") == []


def test_with_another_admin_an_admin_may_drop_their_own_role(app, admin_client, admin, factory):
    factory.user(username="second", is_admin=True)
    response = post(admin_client, f"/admin/users/{admin.id}/admin/revoke")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/account/"
    assert not user_row(app, "root").is_admin
    assert admin_client.get("/admin/users").status_code == 403


@pytest.mark.parametrize("action", ["admin/revoke", "disable", "delete"])
def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    app, admin, factory, monkeypatch, action
):
    # idp/admin/users.py: at least one enabled admin remains "even when two admins try it at
    # the same moment". Each request has made its change and found an admin left (the other
    # one), not yet committed; it is held there until the other request has judged too, or
    # for 2 s when the other cannot get that far before this one commits (the admins' rows
    # are locked). Without that, both would commit and no admin would be left.
    from idp.admin import users

    second = factory.user(username="root2", email="root2@example.com", is_admin=True)
    browsers = [app.test_client(), app.test_client()]
    for browser, name in zip(browsers, ("root", "root2"), strict=True):
        assert Auth(browser).login(name).status_code == 302
    requests = [
        (browsers[0], f"/admin/users/{second.id}/admin/revoke", {}),
        (browsers[1], f"/admin/users/{admin.id}/{action}", {"confirm_username": "root"}),
    ]
    forms = [{**data, "csrf_token": token_of(browser)} for browser, _, data in requests]
    judged = threading.Barrier(2, timeout=2)
    original = users.keeps_an_admin

    def held_after_judging() -> bool:
        result = original()
        with contextlib.suppress(threading.BrokenBarrierError):
            judged.wait()
        return result

    monkeypatch.setattr(users, "keeps_an_admin", held_after_judging)
    start = threading.Barrier(2)
    answers: list = [None, None]

    def send(i: int) -> None:
        browser, path, _ = requests[i]
        start.wait(timeout=10)
        answers[i] = browser.post(path, data=forms[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [a.status_code for a in answers] == [302, 302]
    remaining = [
        u.username for u in rows(app, User, User.is_admin.is_(True), User.disabled.is_(False))
    ]
    assert len(remaining) == 1, remaining
    done = [e.event for e in rows(app, AuditEvent) if e.event.startswith("admin.user.")]
    assert len(done) == 1, done  # one change went through, the other was refused whole


def test_a_disabled_admin_does_not_count_as_the_remaining_admin(app, admin_client, admin, factory):
    factory.user(username="dormant", is_admin=True, disabled=True)
    post(admin_client, f"/admin/users/{admin.id}/admin/revoke")
    assert user_row(app, "root").is_admin


# --- delete ---------------------------------------------------------------------------------


def test_deleting_asks_for_confirmation_first(app, admin_client, user, alice):
    page = admin_client.get(f"/admin/users/{user.id}/delete")
    assert page.status_code == 200
    assert "Delete alice?" in page.text and "ends 1 live session" in text_of(page)
    refused = post(admin_client, f"/admin/users/{user.id}/delete", {"confirm_username": "bob"})
    assert refused.status_code == 400
    assert "not the username" in refused.text
    assert user_row(app, "alice") is not None
    assert post(admin_client, f"/admin/users/{user.id}/delete").status_code == 400
    assert user_row(app, "alice") is not None


def test_deleting_a_user_revokes_tokens_sessions_and_grants(
    app, client, admin_client, admin, user, alice
):
    browser, tokens = alice
    with app.app_context():
        session = db.session()
        session.add(Group(name="staff", members=[session.get(User, user.id)]))
        session.commit()
    response = post(admin_client, f"/admin/users/{user.id}/delete", {"confirm_username": "alice"})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/users"
    assert user_row(app, "alice") is None
    assert rows(app, Token, Token.user_id == user.id) == []
    assert rows(app, Consent, Consent.user_id == user.id) == []
    assert rows(app, UserSession, UserSession.user_id == user.id) == []
    with app.app_context():
        assert db.session().scalar(select(Group).where(Group.name == "staff")).members == []
    assert userinfo_status(client, tokens["access_token"]) == 401
    assert not signed_in(browser)

    [event] = events(app, "admin.user.deleted")
    assert (event.actor, event.target) == (admin.sub, user.sub)
    assert event.details["before"]["username"] == "alice"
    assert event.details["sessions_ended"] == 1 and event.details["tokens_revoked"] == 1
    assert event.details["consents_removed"] == 1
    assert "password_hash" not in json.dumps(event.details)


# --- groups, sessions, consents, tokens on the user page ------------------------------------


def group_names(app, user_id: int) -> list[str]:
    with app.app_context():
        return [g.name for g in db.session().get(User, user_id).groups]


def test_groups_are_assigned_on_the_user_page(app, admin_client, admin, user):
    with app.app_context():
        session = db.session()
        staff, ops = Group(name="staff"), Group(name="ops")
        session.add_all([staff, ops])
        session.commit()
        staff_id, ops_id = staff.id, ops.id
    page = admin_client.get(f"/admin/users/{user.id}")
    assert f'value="{staff_id}"' in page.text
    response = post(admin_client, f"/admin/users/{user.id}/groups", {"groups": [staff_id, ops_id]})
    assert response.status_code == 302
    assert group_names(app, user.id) == ["ops", "staff"]
    post(admin_client, f"/admin/users/{user.id}/groups", {"groups": [ops_id]})
    assert group_names(app, user.id) == ["ops"]
    first, second = events(app, "admin.user.groups_changed")
    assert first.details == {"before": {"groups": []}, "after": {"groups": ["ops", "staff"]}}
    assert second.details["after"] == {"groups": ["ops"]}
    assert (
        post(admin_client, f"/admin/users/{user.id}/groups", {"groups": [999]}).status_code == 400
    )


def test_admin_sees_a_users_session_and_ends_it(app, admin_client, user, alice):
    browser, _ = alice
    [session] = rows(app, UserSession, UserSession.user_id == user.id)
    page = admin_client.get(f"/admin/users/{user.id}")
    assert f"/admin/users/{user.id}/sessions/{session.id}/end" in page.text
    assert (
        post(admin_client, f"/admin/users/{user.id}/sessions/{session.id}/end").status_code == 302
    )
    assert not signed_in(browser)
    assert row(app, UserSession, UserSession.id == session.id).end_reason == "ended by admin"
    assert events(app, "admin.session.ended")[0].details == {"session_id": session.id}
    # An ended session cannot be ended again, nor someone else's through this user.
    assert (
        post(admin_client, f"/admin/users/{user.id}/sessions/{session.id}/end").status_code == 404
    )


def test_end_all_sessions_signs_the_user_out_of_every_browser(app, admin_client, user, alice):
    browser, _ = alice
    other = app.test_client()
    Auth(other).login()
    assert post(admin_client, f"/admin/users/{user.id}/sessions/end-all").status_code == 302
    assert not signed_in(browser) and not signed_in(other)
    assert events(app, "admin.session.ended_all")[0].details == {"sessions_ended": 2}


def test_admin_revokes_a_consent_and_the_applications_tokens(
    app, client, admin_client, user, oauth_client, alice
):
    # RFC 7009 §2.1 semantics: the grant goes and its tokens with it.
    _, tokens = alice
    page = admin_client.get(f"/admin/users/{user.id}")
    assert "Test App" in page.text
    url = f"/admin/users/{user.id}/consents/{oauth_client.client_id}/revoke"
    assert post(admin_client, url).status_code == 302
    assert rows(app, Consent, Consent.user_id == user.id) == []
    assert userinfo_status(client, tokens["access_token"]) == 401
    [event] = events(app, "admin.consent.revoked")
    assert event.details["client_id"] == oauth_client.client_id and event.details["tokens_revoked"]
    assert post(admin_client, url).status_code == 404


def test_admin_revokes_a_token_and_its_whole_grant(
    app, client, admin_client, user, oauth_client, alice
):
    # RFC 7009 §2.1 / RFC 9700 §4.14.2: the refresh token of the grant dies with it.
    _, tokens = alice
    [token] = rows(app, Token, Token.user_id == user.id)
    page = admin_client.get(f"/admin/users/{user.id}")
    assert tokens["access_token"] not in page.text and token.access_token_hash not in page.text
    assert post(admin_client, f"/admin/users/{user.id}/tokens/{token.id}/revoke").status_code == 302
    assert userinfo_status(client, tokens["access_token"]) == 401
    refresh = Auth(client).token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400
    assert "No active tokens." in admin_client.get(f"/admin/users/{user.id}").text
    assert events(app, "admin.token.revoked")[0].details["tokens_revoked"] == 1


def test_a_token_of_another_user_cannot_be_revoked_through_this_user(
    app, admin_client, admin, user, alice
):
    [token] = rows(app, Token, Token.user_id == user.id)
    assert (
        post(admin_client, f"/admin/users/{admin.id}/tokens/{token.id}/revoke").status_code == 404
    )
    assert row(app, Token, Token.id == token.id).revoked_at is None


# --- list, search, pages --------------------------------------------------------------------


def bulk_users(app, specs: list[dict]) -> None:
    """Insert users in one executemany (every row needs the same keys)."""
    now = utcnow()
    keys = {key for spec in specs for key in spec}
    with app.app_context():
        with db.engine().begin() as connection:
            connection.execute(
                insert(User),
                [
                    {"sub": f"sub-{s['username']}", "created_at": now, "updated_at": now}
                    | dict.fromkeys(keys)
                    | s
                    for s in specs
                ],
            )


def listed(response) -> list[str]:
    return re.findall(r'<a href="/admin/users/\d+">([^<]+)</a>', response.text)


def test_search_matches_the_start_of_username_email_or_names_ignoring_case(app, admin_client, user):
    bulk_users(
        app,
        [
            {"username": "bob", "email": "robert@example.org", "name": "Robert Smith"},
            {
                "username": "carol",
                "email": "c@example.org",
                "given_name": "Carol",
                "family_name": "Bobson",
            },
            {"username": "dave", "email": "dave@example.org", "name": "Dave Jacobs"},
        ],
    )
    assert listed(admin_client.get("/admin/users?q=BOB")) == ["bob", "carol"]  # family name
    assert listed(admin_client.get("/admin/users?q=robert@")) == ["bob"]  # email
    assert listed(admin_client.get("/admin/users?q=Alice Lid")) == ["alice"]  # name
    assert listed(admin_client.get("/admin/users?q=jacobs")) == []  # prefixes only
    assert "No users match" in admin_client.get("/admin/users?q=zzz").text
    assert listed(admin_client.get("/admin/users?q=%25")) == []  # no LIKE wildcards


def test_user_list_pages_forward_and_back_by_username(app, admin_client, admin):
    bulk_users(app, [{"username": f"u{n:03d}"} for n in range(120)])
    first = admin_client.get("/admin/users")
    names = listed(first)
    ordered = sorted(["root"] + [f"u{n:03d}" for n in range(120)])
    assert names == ordered[:50]
    assert 'rel="prev"' not in first.text and "after=u048" in first.text
    second = admin_client.get("/admin/users?after=u048")
    assert listed(second) == ordered[50:100]
    back = admin_client.get("/admin/users?before=u049")
    assert listed(back) == ordered[:50]
    last = admin_client.get("/admin/users?last=1")
    assert listed(last) == ordered[-50:]
    assert 'rel="next"' not in last.text and 'rel="prev"' in last.text
