"""Chromium, end to end: forgot password -> the mail read from a real SMTP server (aiosmtpd)
-> the link -> a new password -> sign in; and changing the password on the account page.
Every page state is checked with axe-core (a11y.expect)."""

from __future__ import annotations

import re

import pytest

from ..account.password_support import (  # noqa: F401
    NEW_PASSWORD,
    deliver,
    instance,
    link_in,
    mailbox,
    smtp_server,
    stop_sender,
)
from ..factories import PASSWORD
from .a11y import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config, smtp_server):  # noqa: F811
    # The browser conftest's issuer (the live server's port) plus the test's SMTP server.
    return {
        **app_config,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Identity <idp@example.com>",
        "MAIL_WORKER": False,
    }


def sign_in(page, base, password):
    page.goto(base + "/login")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_forgot_password_by_mail_then_sign_in(app, live_server, page, user, mailbox):  # noqa: F811
    page.goto(live_server + "/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    # An empty submit: the error summary, focused, and an "Error: " title.
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile("^Error: "))
    page.get_by_label("Username or email").fill("alice@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

    (message,) = deliver(app, mailbox)
    link = link_in(message)
    assert link.startswith(live_server + "/password/reset?token=")
    page.goto(link)
    # The secret left the address bar.
    expect(page).to_have_url(live_server + "/password/reset")
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")

    field = page.get_by_label("New password")
    toggle = page.get_by_role("button", name="Show password")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    field.fill("alice liddell")  # refused: her own name
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    assert field.get_attribute("type") == "text"
    expect(page.locator("#password-count")).to_contain_text("13 characters")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#password-error")).to_contain_text("Don't use your name")
    expect(page.locator("#password-strength")).to_be_visible()

    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("status")).to_contain_text("Sign in with your new password")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    sign_in(page, live_server, PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("Incorrect username or password")
    sign_in(page, live_server, NEW_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")

    # The link was used: following it again says so.
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")


def test_change_password_on_the_account_page(app, live_server, page, user, mailbox):  # noqa: F811
    sign_in(page, live_server, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    page.get_by_role("link", name="Change password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change your password")

    page.get_by_label("Current password").fill("not it")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#current_password-error")).to_have_text(
        "This is not your current password."
    )

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password was changed.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")

    (notice,) = deliver(app, mailbox)
    assert notice["Subject"] == "Your password was changed"
