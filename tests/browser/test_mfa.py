"""Chromium: set up an authenticator app, sign out, sign in with password + TOTP, use a
recovery code, and be led through enrolment when the account requires MFA. The codes are
computed with pyotp from the setup key the page shows (RFC 6238); every page state is
checked with axe-core (a11y.expect).
"""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from idp import db
from idp.models import User

from ..factories import PASSWORD
from .a11y import expect

pytestmark = pytest.mark.browser


def sign_in_password(page, base: str, username: str = "alice") -> None:
    page.goto(base + "/account/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def enrol(page, heading: str, button: str) -> tuple[str, list[str]]:
    """On an enrolment page: read the setup key, type a code, save the recovery codes."""
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.get_by_role("img", name="QR code")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    # A wrong code first: the error summary takes the focus (WCAG 2.2 §3.3.1).
    wrong = str((int(code(secret)) + 1) % 1_000_000).zfill(6)
    page.get_by_label("Code from your authenticator app").fill(wrong)
    page.get_by_role("button", name=button).click()
    expect(page.locator("#error-summary")).to_be_focused()
    assert page.title().startswith("Error: ")
    page.get_by_label("Code from your authenticator app").fill(code(secret))
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
    expect(page.get_by_role("link", name="Download as .txt")).to_be_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="I saved my codes, continue").click()
    return secret, codes


def sign_out(page) -> None:
    page.get_by_role("link", name="Sign out", exact=True).click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")


def test_enrol_totp_then_sign_in_with_password_and_code(live_server, page, user):
    sign_in_password(page, live_server)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_role("link", name="Set up").click()
    secret, codes = enrol(page, "Set up an authenticator app", "Verify and turn on")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    sign_out(page)

    sign_in_password(page, live_server)
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
    page.get_by_label("Code from your authenticator app").fill(code(secret, 1))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    sign_out(page)

    # A recovery code, from the link on the code page.
    sign_in_password(page, live_server)
    page.get_by_role("link", name="Use a recovery code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Use a recovery code")
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")


def test_a_required_user_is_led_through_enrolment(app, live_server, page, user):
    with app.app_context():
        row = db.session().scalar(select(User).where(User.username == "alice"))
        row.mfa_required = True
        db.session().commit()
    sign_in_password(page, live_server)
    enrol(page, "Set up two-step verification", "Verify and continue")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    page.get_by_role("link", name="Remove the authenticator app").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Remove your authenticator app?")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Remove the app").click()
    expect(page.get_by_role("status")).to_contain_text("Authenticator app removed.")
    page.get_by_role("link", name="Create new codes…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create new recovery codes?")
