"""Chromium: a user changes their email address on the account page; the old address stays
until the user follows the link mailed to the new one (read from a real SMTP server). Every
page state is checked with axe-core."""

from __future__ import annotations

import pytest

from ..account.mail_support import *  # noqa: F403
from ..account.mail_support import deliver, link_in
from ..factories import PASSWORD
from .a11y import expect

pytestmark = pytest.mark.browser


def test_change_email_then_verify(live_server, page, app, factory, mailbox):
    factory.user(username="alice", email="alice@example.com", email_verified=True)
    page.goto(live_server + "/login")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")

    page.get_by_role("link", name="Change email address").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change your email address")
    page.get_by_label("New email address").fill("alice@new.example")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_role("button", name="Send a confirmation link").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("not your current password")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Send a confirmation link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_text("Waiting for confirmation: alice@new.example")).to_be_visible()
    expect(page.get_by_text("alice@example.com", exact=False).first).to_be_visible()

    (message,) = deliver(app, mailbox)
    page.goto(link_in(message, "/account/verify"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    page.get_by_role("button", name="Confirm alice@new.example").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Email address confirmed")
    page.get_by_role("link", name="Go to your account").click()
    expect(page.get_by_text("Waiting for confirmation")).to_have_count(0)
    expect(page.get_by_role("main")).to_contain_text("alice@new.example verified")
    assert [m["To"] for m in deliver(app, mailbox)] == ["alice@new.example", "alice@example.com"]
