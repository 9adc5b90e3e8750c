"""Chromium: self-registration from the sign-in page. The new user reads the mail (a real
SMTP server), follows the link, chooses a username and password, then signs in; the address
is verified before the first sign-in. Every page state is checked with axe-core."""

from __future__ import annotations

import re

import pytest

from ..account.mail_support import *  # noqa: F403
from ..account.mail_support import deliver, link_in
from .a11y import expect

pytestmark = pytest.mark.browser

PASSPHRASE = "orange kites over the harbour"


@pytest.mark.config(REGISTRATION_USERS="domains:example.org")
def test_register_verify_then_sign_in(live_server, page, app, mailbox):
    page.goto(live_server + "/login")
    expect(page.get_by_role("link", name="Create an account")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    page.get_by_label("Email address").fill("newbie@elsewhere.net")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("example.org")
    expect(page).to_have_title(re.compile(r"^Error: Create an account"))
    page.get_by_label("Email address").fill("newbie@example.org")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")

    (message,) = deliver(app, mailbox)
    page.goto(link_in(message, "/account/register/complete"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Finish creating your account")
    page.get_by_label("Username").fill("newbie")
    page.get_by_label("Full name").fill("New Bie")
    page.locator("#password").fill("newbie2024")
    page.get_by_label("Repeat the password").fill("newbie2024")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#error-summary")).to_contain_text("username")
    page.locator("#password").fill(PASSPHRASE)
    page.get_by_label("Repeat the password").fill(PASSPHRASE)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_contain_text("Your account is ready")

    page.get_by_label("Password").fill(PASSPHRASE)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    expect(page.get_by_role("main")).to_contain_text("newbie@example.org verified")
