"""Admin: a user's factors shown (never secrets), removed, re-enrolment required; each
change audited and emailed (NIST SP 800-63B §4.6)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.auth import recovery, totp
from idp.models import AuditEvent, User
from tests.helpers import Auth, csrf_token

from .conftest import enrol_in_account, secret_of, subjects


@pytest.fixture
def admin_client(app, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    browser = app.test_client()
    assert Auth(browser).login("root").location.endswith("/login/enrol")
    from .test_policy import enrol_at_sign_in

    enrol_at_sign_in(browser)
    return browser


@pytest.fixture
def alice_with_app(app, user):
    browser = app.test_client()
    Auth(browser).login()
    enrol_in_account(browser)
    return user


def confirm_and_post(browser, url: str):
    page = browser.get(url)
    assert page.status_code == 200
    return browser.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True))})


def test_the_user_page_lists_factors_but_no_secret(app, admin_client, alice_with_app):
    html = admin_client.get(f"/admin/users/{alice_with_app.id}").get_data(as_text=True)
    assert "Two-step verification" in html and "Set up" in html and "10 unused" in html
    assert secret_of(app) not in html


def test_admin_removes_the_app_audited_and_emailed(app, admin_client, alice_with_app, mailbox):
    url = f"/admin/users/{alice_with_app.id}/factors/totp/remove"
    assert confirm_and_post(admin_client, url).status_code == 302
    with app.app_context():
        assert not totp.has(db.session().get(User, alice_with_app.id))
        event = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "admin.mfa.factor_removed")
        )
        assert event.target == alice_with_app.sub
    assert "Your sign-in methods were changed by an administrator" in subjects(app, mailbox)


def test_admin_requires_re_enrolment(app, client, auth, admin_client, alice_with_app, mailbox):
    url = f"/admin/users/{alice_with_app.id}/factors/reset"
    assert confirm_and_post(admin_client, url).status_code == 302
    with app.app_context():
        alice = db.session().get(User, alice_with_app.id)
        assert alice.mfa_required and not totp.has(alice) and recovery.remaining(alice) == 0
    assert "Your sign-in methods were changed by an administrator" in subjects(app, mailbox)
    # The next sign-in leads through enrolment.
    assert auth.login().location.endswith("/login/enrol")


def test_a_removal_needs_the_csrf_token(app, admin_client, alice_with_app):
    url = f"/admin/users/{alice_with_app.id}/factors/totp/remove"
    assert admin_client.post(url).status_code == 400
    with app.app_context():
        assert totp.has(db.session().get(User, alice_with_app.id))


def test_admin_sets_requires_mfa_on_a_client_audited(app, admin_client, oauth_client):
    from idp.models import Client

    url = f"/admin/clients/{oauth_client.client_id}/edit"
    page = admin_client.get(url)
    assert "Requires MFA" in page.get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "client_name": "Test App",
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": "https://rp.example/cb",
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "email"],
        "require_mfa": "y",
    }
    assert admin_client.post(url, data=form).status_code == 302
    with app.app_context():
        s = db.session()
        row = s.scalar(select(Client).where(Client.client_id == oauth_client.client_id))
        assert row.require_mfa
        event = s.scalar(select(AuditEvent).where(AuditEvent.event == "admin.client.updated"))
        assert event.details["after"]["require_mfa"] is True


def test_admin_requires_mfa_for_a_group(app, client, auth, admin_client, user):
    from idp.models import Group

    with app.app_context():
        s = db.session()
        group = Group(name="finance")
        group.members.append(s.get(User, user.id))
        s.add(group)
        s.commit()
        group_id = group.id
    page = admin_client.get(f"/admin/groups/{group_id}")
    token = csrf_token(page.get_data(as_text=True))
    response = admin_client.post(
        f"/admin/groups/{group_id}/mfa-required", data={"csrf_token": token, "required": "1"}
    )
    assert response.status_code == 302
    assert auth.login().location.endswith("/login/enrol")
