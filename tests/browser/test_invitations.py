"""Chromium: an admin invites a user; the invitee reads the mail (a real SMTP server), follows
the link, is refused a common password with the reason, chooses a good one and signs in.
Every page state is checked with axe-core (a11y.expect)."""

from __future__ import annotations

import re

import pytest

from ..account.mail_support import *  # noqa: F403
from ..account.mail_support import deliver, link_in
from . import a11y
from .a11y import expect

pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]

PASSPHRASE = "seven quiet lanterns drifting"


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_invitation_accepted_then_sign_in(live_server, page, browser, root, app, mailbox):
    from ..factories import PASSWORD

    sign_in(page, live_server, "root", PASSWORD)
    page.goto(live_server + "/admin/users")
    page.get_by_role("link", name="Invite user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invite user")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("#error-summary")).to_be_focused()  # the email is required
    expect(page).to_have_title(re.compile(r"^Error: "))
    page.get_by_label("Email").fill("bob@example.com")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Full name").fill("Bob Stone")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to bob@example.com")
    expect(page.locator(".badge", has_text="pending")).to_be_visible()

    (message,) = deliver(app, mailbox)
    url = link_in(message, "/account/invitation")
    invitee = browser.new_context().new_page()
    try:
        invitee.goto(url)
        expect(invitee.get_by_role("heading", level=1)).to_have_text("Choose your password")
        invitee.get_by_label("New password").fill("password123")
        invitee.get_by_label("Repeat the password").fill("password123")
        invitee.get_by_role("button", name="Set password").click()
        expect(invitee.locator("#error-summary")).to_be_focused()
        expect(invitee.locator("#error-summary")).to_contain_text("most common passwords")
        invitee.get_by_label("New password").fill(PASSPHRASE)
        invitee.get_by_label("Repeat the password").fill(PASSPHRASE)
        invitee.get_by_role("button", name="Set password").click()
        expect(invitee.get_by_role("status")).to_contain_text("Your password is set")
        expect(invitee.get_by_label("Username or email")).to_have_value("bob")
        invitee.get_by_label("Password").fill(PASSPHRASE)
        invitee.get_by_role("button", name="Sign in").click()
        expect(invitee.get_by_role("heading", level=1)).to_have_text("Your account")
        expect(invitee.get_by_text("verified", exact=True)).to_be_visible()
        # The used link leads nowhere now.
        invitee.goto(url)
        expect(invitee.get_by_role("heading", level=1)).to_have_text("This link does not work")
    finally:
        invitee.context.close()

    page.reload()
    expect(page.locator(".badge", has_text="accepted")).to_be_visible()
    page.get_by_role("link", name="Users").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    a11y.check(page)
