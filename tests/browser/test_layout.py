"""Layout measured in Chromium: pairs of buttons that answer one question (issue 12).

Two buttons that answer one question must look like a pair: the same height, side by side
on one row, or, where the screen is too narrow, stacked with the same width and left edge.
Checked on a desktop window and a phone-sized one. Set IDP_SCREENSHOTS=<folder> to keep
the screenshots.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from ..helpers import pkce_pair
from .test_e2e import PHONE, see_consent, sign_in

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1200, "height": 900}
NARROW = {"width": 280, "height": 653}  # too narrow for a row: the buttons stack
VIEWPORTS = pytest.mark.parametrize(
    "viewport", [DESKTOP, PHONE, NARROW], ids=["desktop", "phone", "narrow"]
)
TOLERANCE = 0.5  # CSS pixels: sub-pixel rounding, never a visible step


def assert_a_pair(first: dict, second: dict) -> None:
    """Equal height; side by side with the same top, or stacked with the same width and left."""
    assert abs(first["height"] - second["height"]) <= TOLERANCE, (first, second)
    if abs(first["y"] - second["y"]) <= TOLERANCE:
        assert first["x"] + first["width"] <= second["x"], "the buttons overlap"
        return
    assert first["y"] + first["height"] <= second["y"], "stacked buttons overlap"
    assert abs(first["width"] - second["width"]) <= TOLERANCE, (first, second)
    assert abs(first["x"] - second["x"]) <= TOLERANCE, (first, second)


@VIEWPORTS
def test_consent_buttons_are_aligned_and_equally_tall(
    browser, live_server, factory, user, viewport
):
    client = factory.client(name="Layout RP")
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/authorize?{urlencode(params)}")
        sign_in(page)
        see_consent(page, "Layout RP", shots=f"-{viewport['width']}")
        page.wait_for_load_state()  # its stylesheet applied: measured as a person sees it
        allow = page.get_by_role("button", name="Allow").bounding_box()
        deny = page.get_by_role("button", name="Deny").bounding_box()
        assert allow and deny and allow["height"] > 0
        assert_a_pair(allow, deny)
        # Both inside the window: nothing to scroll sideways for on a phone.
        assert deny["x"] + deny["width"] <= viewport["width"]
    finally:
        context.close()


@VIEWPORTS
def test_sign_out_confirmation_buttons_are_aligned_and_equally_tall(
    browser, live_server, user, viewport
):
    # The same row of choices (.actions) on the RP-Initiated Logout confirmation page.
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/login")
        sign_in(page)
        page.goto(f"{live_server}/end_session")
        expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
        page.wait_for_load_state()
        confirm = page.get_by_role("button", name="Sign out", exact=True).bounding_box()
        stay = page.get_by_role("button", name="Stay signed in").bounding_box()
        assert confirm and stay and confirm["height"] > 0
        assert_a_pair(confirm, stay)
        assert stay["x"] + stay["width"] <= viewport["width"]
    finally:
        context.close()
