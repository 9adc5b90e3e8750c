"""Chromium drives the admin UI: create a user who then signs in, disable a user whose next
sign-in fails, create a client and rotate its secret; the pages fit a 390px phone.

Set IDP_SCREENSHOTS=<folder> to save screenshots of the admin pages (desktop and phone).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from ..factories import PASSWORD
from .a11y import expect

# Admins sign in with the password alone here (MFA for admins: tests/mfa, test_mfa.py).
pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]

PHONE = {"width": 390, "height": 844}
SCROLL_WIDTH = "document.documentElement.scrollWidth"
BOB_PASSWORD = "bob's brand new passphrase"


def screenshot(page, name: str) -> None:
    folder = os.environ.get("IDP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def csp_violations(page) -> list[str]:
    """Console errors the Content-Security-Policy raised (inline style or script, CDN)."""
    found: list[str] = []
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return found


def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def client_credentials(issuer: str, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        issuer + "/token",
        data={"grant_type": "client_credentials", "scope": "api.read"},
        auth=(client_id, secret),
        timeout=5,
    )


def test_admin_creates_a_user_who_then_signs_in(browser, live_server, page, root):
    violations = csp_violations(page)
    sign_in(page, live_server, "root")
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    screenshot(page, "admin-users")
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Full name").fill("Bob Builder")
    page.get_by_label("Email", exact=True).fill("bob@example.com")
    page.get_by_label("New password").fill(BOB_PASSWORD)
    page.get_by_label("Repeat the password").fill(BOB_PASSWORD)
    screenshot(page, "admin-user-new")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("User bob created.")
    expect(page.get_by_role("heading", name="bob", exact=True)).to_be_visible()
    screenshot(page, "admin-user-detail")

    context = browser.new_context()
    try:
        bob = context.new_page()
        sign_in(bob, live_server, "bob", BOB_PASSWORD)
        expect(bob.get_by_role("heading", name="Your account")).to_be_visible()
        expect(bob.get_by_text("Bob Builder")).to_be_visible()
        expect(bob.get_by_role("link", name="Admin")).to_have_count(0)
    finally:
        context.close()
    assert violations == []


def test_admin_disables_a_user_and_the_next_sign_in_fails(
    browser, live_server, page, root, factory
):
    factory.user(username="bob", email="bob@example.com")
    context = browser.new_context()
    try:
        bob = context.new_page()
        sign_in(bob, live_server, "bob")
        expect(bob.get_by_role("heading", name="Your account")).to_be_visible()

        sign_in(page, live_server, "root")
        page.goto(live_server + "/admin/users?q=bo")
        page.get_by_role("link", name="bob").click()
        page.get_by_role("link", name="Disable…").click()
        # The confirmation step says what will happen before anything does.
        expect(page.get_by_role("heading", name="Disable bob?")).to_be_visible()
        expect(page.get_by_text("stop bob from signing in")).to_be_visible()
        page.get_by_role("button", name="Disable bob").click()
        expect(page.get_by_role("status")).to_contain_text("bob is disabled")
        expect(page.get_by_text("Disabled", exact=True)).to_be_visible()

        # The running session is over, and signing in again is refused.
        bob.goto(live_server + "/account/")
        expect(bob.get_by_role("heading", name="Sign in")).to_be_visible()
        sign_in(bob, live_server, "bob")
        expect(bob.get_by_role("alert")).to_have_text("Incorrect username or password.")
    finally:
        context.close()


def test_admin_creates_a_client_and_rotates_its_secret(live_server, page, root):
    violations = csp_violations(page)
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Clients"
    ).click()
    page.get_by_role("link", name="New client").click()
    page.get_by_label("Name").fill("Reporting job")
    page.get_by_label("authorization_code").uncheck()
    page.get_by_label("refresh_token").uncheck()
    page.get_by_label("client_credentials").check()
    page.get_by_label("openid").uncheck()
    page.get_by_label("profile").uncheck()
    page.get_by_label("email", exact=True).uncheck()
    page.get_by_label("Other scopes").fill("api.read")
    screenshot(page, "admin-client-new")
    page.get_by_role("button", name="Create client").click()

    expect(page.get_by_role("heading", name="Client created")).to_be_visible()
    client_id = page.locator("#client-id").inner_text()
    first = page.locator("#client-secret").inner_text()
    assert client_credentials(live_server, client_id, first).status_code == 200  # RFC 6749 §4.4

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_role("heading", name="Reporting job")).to_be_visible()
    expect(page.get_by_text(first)).to_have_count(0)  # shown once only
    screenshot(page, "admin-client-detail")
    page.get_by_role("link", name="Rotate secret…").click()
    expect(page.get_by_role("heading", name="Rotate the secret of Reporting job?")).to_be_visible()
    assert client_credentials(live_server, client_id, first).status_code == 200  # not yet
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="New secret")).to_be_visible()
    second = page.locator("#client-secret").inner_text()
    screenshot(page, "admin-client-secret")
    assert second != first
    old = client_credentials(live_server, client_id, first)
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"  # RFC 6749 §5.2
    assert client_credentials(live_server, client_id, second).status_code == 200
    assert violations == []


def test_admin_pages_fit_a_phone(browser, live_server, root, factory):
    # WCAG 2.1 SC 1.4.10 (reflow): no sideways scrolling at 320 CSS px wide and up; here the
    # 390px phone of the other browser tests. With IDP_SCREENSHOTS the pages are also
    # captured on a phone and a desktop, to look at.
    factory.client(name="Storefront", redirect_uris=["https://shop.example/cb"])
    sizes = [("phone", PHONE)]
    if os.environ.get("IDP_SCREENSHOTS"):
        sizes.append(("desktop", {"width": 1280, "height": 900}))
    for size, viewport in sizes:
        context = browser.new_context(viewport=viewport, is_mobile=size == "phone")
        try:
            page = context.new_page()
            violations = csp_violations(page)
            sign_in(page, live_server, "root")
            pages = {
                "users": "/admin/users",
                "user": "/admin/users/1",
                "user-edit": "/admin/users/1/edit",
                "groups": "/admin/groups",
                "clients": "/admin/clients",
                "client-form": "/admin/clients/new",
                "audit": "/admin/audit",
            }
            for name, path in pages.items():
                page.goto(live_server + path)
                expect(page.get_by_role("heading", level=1)).to_be_visible()
                if size == "phone":
                    assert page.evaluate(SCROLL_WIDTH) <= PHONE["width"], name
                screenshot(page, f"admin-{name}-{size}")
            page.goto(live_server + "/admin/clients")
            expect(page.get_by_role("link", name="Storefront")).to_be_visible()
            assert violations == []
        finally:
            context.close()


def test_keyboard_focus_reaches_the_admin_navigation_and_search_in_order(live_server, page, root):
    # WCAG 2.1 SC 2.4.3 (focus order): skip link, top bar, admin navigation, then the page.
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/users")
    sections = page.get_by_role("navigation", name="Administration").get_by_role("link")
    expected = [
        "Skip to main content",
        "Identity",
        "Admin",
        "Sign out",
        *sections.all_inner_texts(),
        "New user",
        "Invite user",
        "q",
    ]
    order = []
    for _ in range(len(expected) + 1):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id")
        )
    assert order == [*expected, "Search"]
    assert "Users" in expected and "Audit log" in expected
