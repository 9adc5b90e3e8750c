"""The user's own data in Chromium (issue 14, flows 7 and 8): edit the profile, download
the export, ask for deletion and have an admin approve it; the new-device notice mail.
Mail is read from a real SMTP server (aiosmtpd); every page state is checked with axe."""

# ruff: noqa: F811  (the mail fixtures, imported, are parameters of the tests)
from __future__ import annotations

import json
import re

import pytest

from ..account.own import delivered, mail_server, text_of  # noqa: F401
from ..factories import PASSWORD
from ..mail.conftest import instance, mailbox, smtp_server, stop_sender  # noqa: F401
from .a11y import expect

# The admin approves with the password alone here (admin MFA: tests/mfa/).
pytestmark = pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)


def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def alice(factory):
    return factory.user(username="alice", email="alice@example.com", name="Alice Liddell")


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def test_edit_download_and_have_the_account_deleted(
    app, browser, live_server, page, alice, root, mail_server, mailbox
):
    sign_in(page, live_server, "alice")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    # Edit the profile: a mistake first, shown in an error summary that takes the focus.
    page.get_by_role("link", name="Edit your profile").click()
    expect(page.get_by_role("heading", name="Edit your profile")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_count(0)  # never editable here
    page.get_by_label("Nickname").fill("Al")
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile("^Error: "))
    page.get_by_role("link", name=re.compile("Time zone:")).click()
    expect(page.get_by_label("Time zone")).to_be_focused()
    page.get_by_label("Time zone").fill("Europe/London")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Profile saved.")
    expect(page.get_by_text("Europe/London")).to_be_visible()

    # Download the data: a JSON attachment with the new profile and no secret.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download your data").click()
    download = info.value
    assert re.fullmatch(r"account-alice-\d{8}\.json", download.suggested_filename)
    with open(download.path(), encoding="utf-8") as file:
        body = file.read()
    data = json.loads(body)
    assert data["profile"]["nickname"] == "Al" and data["profile"]["zoneinfo"] == "Europe/London"
    assert data["sessions"] and "password_hash" not in body and "$argon2" not in body

    # Ask for deletion: the password again; a wrong one is refused.
    page.get_by_role("link", name="Request deletion…").click()
    expect(page.get_by_role("heading", name="Delete your account?")).to_be_visible()
    page.get_by_label("Your current password").fill("not my password")
    page.get_by_role("button", name="Request deletion").click()
    expect(page.locator("#error-summary")).to_be_focused()
    page.get_by_label("Your current password").fill(PASSWORD)
    page.get_by_role("button", name="Request deletion").click()
    expect(page.get_by_role("status")).to_contain_text("Your request was sent")
    expect(page.get_by_role("button", name="Cancel the deletion request")).to_be_visible()

    # The admin approves, after a confirmation page.
    context = browser.new_context()
    try:
        admin = context.new_page()
        sign_in(admin, live_server, "root")
        admin.get_by_role("link", name="Admin").click()
        admin.get_by_role("link", name="Review the deletion requests").click()
        expect(admin.get_by_role("heading", name="Deletion requests")).to_be_visible()
        expect(admin.get_by_role("row", name=re.compile("alice"))).to_be_visible()
        admin.get_by_role("link", name="Approve the deletion of alice").click()
        expect(
            admin.get_by_role("heading", name=re.compile("Delete the account of alice"))
        ).to_be_visible()
        admin.get_by_role("button", name="Delete alice").click()
        expect(admin.get_by_role("status")).to_have_text("User alice deleted, as they asked.")
        expect(admin.get_by_text("No pending requests.")).to_be_visible()
    finally:
        context.close()

    # Alice is signed out for good; she was mailed at the request and at the decision.
    page.goto(live_server + "/account/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    subjects = [m["Subject"] for m in delivered(app, mailbox)]
    assert subjects == ["Your request to delete your account", "Your account was deleted"]


def test_a_new_browser_is_announced_by_mail_and_the_notice_can_be_turned_off(
    app, browser, live_server, page, alice, mail_server, mailbox
):
    sign_in(page, live_server, "alice")  # the account's first browser: no notice
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "idp_device")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    second = browser.new_context(
        user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    )
    try:
        other = second.new_page()
        sign_in(other, live_server, "alice")
        expect(other.get_by_role("heading", name="Your account")).to_be_visible()
        (message,) = delivered(app, mailbox)
        assert message["Subject"] == "New sign-in to your account"
        assert "Firefox on Linux" in text_of(message)
        # The same browser again: known, nothing more.
        other.get_by_role("navigation", name="Account").get_by_role("link", name="Sign out").click()
        other.get_by_role("button", name="Sign out").click()
        sign_in(other, live_server, "alice")
        expect(other.get_by_role("heading", name="Your account")).to_be_visible()
        assert len(delivered(app, mailbox)) == 1
    finally:
        second.close()

    # Turned off on the account page: a third browser signs in without a mail.
    page.get_by_label(re.compile("Email me when someone signs in")).uncheck()
    page.get_by_role("button", name="Save notice setting").click()
    expect(page.get_by_role("status")).to_contain_text("no longer get an email")
    expect(page.get_by_label(re.compile("Email me when someone signs in"))).not_to_be_checked()
    third = browser.new_context()
    try:
        page3 = third.new_page()
        sign_in(page3, live_server, "alice")
        expect(page3.get_by_role("heading", name="Your account")).to_be_visible()
        assert len(delivered(app, mailbox)) == 1
    finally:
        third.close()
