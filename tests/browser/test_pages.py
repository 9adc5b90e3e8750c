"""Chromium on the pages people use: focus moves after errors, the skip link, the focus ring,
sign-out with a way back, confirmation steps, and the layout of a 390px phone; every state
is checked with axe-core (a11y.expect).

Set IDP_SCREENSHOTS=<folder> to save each page at 1200×900 and 390×844 (docs/screenshots).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from ..factories import PASSWORD
from . import a11y
from .a11y import expect

# Admins sign in with the password alone here (MFA for admins: tests/mfa, test_mfa.py).
pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]

DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 390, "height": 844}
FOCUS = "rgb(23, 78, 166)"  # #174ea6, app.css --focus
ERROR = "rgb(164, 22, 26)"  # #a4161a, app.css --error
FOCUSED_ID = "document.activeElement && document.activeElement.id"


def screenshot(page, name: str) -> None:
    """The viewport (not the whole page), so the files stay small."""
    folder = os.environ.get("IDP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")


def single_line(locator) -> bool:
    """The element's text takes one line (its height is under two line heights)."""
    return locator.evaluate(
        """e => {
          const s = getComputedStyle(e);
          const box = parseFloat(s.paddingTop) + parseFloat(s.paddingBottom) + 2;
          return e.getBoundingClientRect().height < 2 * parseFloat(s.lineHeight) + box;
        }"""
    )


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def test_the_error_summary_takes_focus_and_leads_to_each_field(live_server, page, root):
    # WCAG 2.2 §3.3.1 and §2.4.3: after a failed submit focus starts at the list of problems.
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/clients/new")
    page.get_by_role("button", name="Create client").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: New client"))
    links = summary.get_by_role("link")
    expect(links).to_have_count(2)  # the name and the redirect URIs, in one answer
    expect(page.locator("#client_name")).to_have_css("border-top-color", ERROR)
    summary.get_by_role("link", name=re.compile("^Redirect URIs")).click()
    expect(page.locator("#redirect_uris")).to_be_focused()
    expect(page.get_by_text("Redirect URIs (")).to_have_count(0)  # not a required field
    expect(page.locator("label[for=client_name]")).to_contain_text("(required)")


def test_a_failed_sign_in_leaves_focus_on_the_password(live_server, page, user):
    page.goto(live_server + "/login")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    expect(page.locator("#password")).to_be_focused()
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password")).to_have_accessible_description(
        "Incorrect username or password."
    )


def test_the_skip_link_comes_first_and_moves_to_the_page(live_server, page, root):
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/users")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUSED_ID) == "main"
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="New user")).to_be_focused()


def test_the_focus_ring_is_the_dark_blue_of_at_least_3_to_1(live_server, page, root):
    # WCAG 2.2 §1.4.11 / §2.4.13: the ratios are in app.css (7.85:1 on white).
    sign_in(page, live_server, "root")
    for path, selector in (("/admin/clients/new", "#client_name"), ("/admin/users", "#q")):
        page.goto(live_server + path)
        page.locator(selector).focus()
        expect(page.locator(selector)).to_have_css("outline-color", FOCUS)
        expect(page.locator(selector)).to_have_css("outline-width", "3px")
    page.goto(live_server + "/admin/clients/new")
    button = page.get_by_role("button", name="Create client")
    button.focus()
    expect(button).to_have_css("outline-color", FOCUS)
    # Buttons use the page font, not the browser's default.
    body_font = page.evaluate("getComputedStyle(document.body).fontFamily")
    expect(button).to_have_css("font-family", body_font)


def test_sign_out_everywhere_asks_first_and_cancel_keeps_you_signed_in(live_server, page, user):
    sign_in(page, live_server, "alice")
    page.get_by_role("link", name="Sign out everywhere…").click()
    expect(page.get_by_role("heading", name="Sign out everywhere?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("link", name="Sign out everywhere…").click()
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()


def test_cancel_on_the_sign_out_page_goes_back(live_server, page, root):
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/users?q=ro")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign out")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(live_server + "/admin/users?q=ro")
    expect(page.get_by_role("link", name="root")).to_be_visible()


def test_the_pages_fit_a_phone(browser, live_server, root, factory):
    # WCAG 2.2 §1.4.10 reflow, and the phone layout of the issue.
    for username in ("root", "root"):  # two sessions: the account lists both
        context = browser.new_context(viewport=PHONE, is_mobile=True)
        page = context.new_page()
        sign_in(page, live_server, username)
    page.goto(live_server + "/account/")
    sign_out = page.get_by_role("button", name=re.compile("^Sign out of"))
    expect(sign_out).to_have_count(2)
    for i in range(2):
        assert single_line(sign_out.nth(i)), "Sign out wraps"
    assert single_line(page.locator(".sessions .tag"))
    page.goto(live_server + "/logout")
    # A short card page fills the screen below the top bar without scrolling.
    assert page.evaluate("document.documentElement.scrollHeight") <= PHONE["height"]
    page.goto(live_server + "/admin/audit")
    tops = page.locator(".subnav a").evaluate_all("links => links.map(a => a.offsetTop)")
    assert len(set(tops)) == 1, "the admin menu takes one line"
    first_event = page.locator("table.audit tbody tr").first
    expect(first_event).to_be_in_viewport()  # the filters leave room for the log
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()


def authorization_url(base: str, client, redirect_uri: str) -> str:
    session = OAuth2Session(
        client.client_id, client.client_secret, scope="openid profile email",
        redirect_uri=redirect_uri, code_challenge_method="S256",
    )  # fmt: skip
    url, _ = session.create_authorization_url(
        base + "/authorize", code_verifier=generate_token(48), nonce=generate_token(20)
    )
    return url


@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_each_changed_page_on_a_desktop_and_a_phone(
    browser, live_server, root, factory, rp_callback, size, viewport
):
    """Every page this issue changed, in the states people meet; checked with axe, and
    saved with IDP_SCREENSHOTS (docs/screenshots/<page>-<size>.png)."""
    client = factory.client(name="Storefront", redirect_uris=[rp_callback.url])
    context = browser.new_context(viewport=viewport, is_mobile=size == "phone")
    page = context.new_page()
    try:
        page.goto(live_server + "/login")
        page.get_by_label("Username or email").fill("root")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#password")).to_be_focused()
        screenshot(page, f"login-error-{size}")
        page.goto(authorization_url(live_server, client, rp_callback.url))
        page.get_by_label("Username or email").fill("root")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Allow")).to_be_visible()
        screenshot(page, f"consent-{size}")
        page.goto(live_server + "/authorize?client_id=nobody&response_type=code")
        expect(page.get_by_role("heading", name="What you can do")).to_be_visible()
        screenshot(page, f"authorize-error-{size}")
        page.goto(live_server + "/account/")
        expect(page.get_by_role("heading", name="Your account")).to_be_visible()
        screenshot(page, f"account-{size}")
        page.goto(live_server + "/device")
        page.get_by_label("Code").fill("BCDF-GHJK")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#user_code")).to_have_attribute("aria-invalid", "true")
        screenshot(page, f"device-error-{size}")
        page.goto(live_server + "/logout?next=/account/")
        expect(page.get_by_role("link", name="Cancel")).to_be_visible()
        screenshot(page, f"logout-{size}")

        page.goto(live_server + "/admin/users/1")
        expect(page.get_by_role("heading", name="root", exact=True)).to_be_visible()
        expect(page.get_by_role("cell", name=re.compile("Chrom"))).to_have_count(2)
        screenshot(page, f"admin-user-{size}")
        page.get_by_role("link", name="Reset password…").click()
        expect(page.get_by_role("heading", name="Reset the password of root?")).to_be_visible()
        screenshot(page, f"admin-confirm-{size}")
        page.goto(live_server + "/admin/clients/new")
        page.get_by_role("button", name="Create client").click()
        expect(page.locator("#error-summary")).to_be_focused()
        screenshot(page, f"admin-client-errors-{size}")
        page.goto(live_server + "/admin/audit")
        expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
        screenshot(page, f"admin-audit-{size}")
        a11y.check(page)
    finally:
        context.close()
