"""Passkeys in real Chromium, with the DevTools virtual authenticator (CDP WebAuthn domain):
add a passkey on the account page, sign out, sign in without a password or username, remove
the passkey. Every page state is checked with axe (a11y.expect).

Browsers refuse an IP address as the RP ID (WebAuthn L3 §5.1.4.1), so the issuer here is
http://localhost:PORT, a loopback issuer (idp.config.check_issuer).
"""

from __future__ import annotations

import re

import pytest

from . import a11y
from .a11y import expect
from .test_pages import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]


@pytest.fixture
def app_config(app_config, idp_socket):
    port = idp_socket.getsockname()[1]
    return {**app_config, "ISSUER": f"http://localhost:{port}", "MAIL_WORKER": False}


@pytest.fixture
def authenticator(page):
    """A platform authenticator with user verification and discoverable credentials."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def credentials(authenticator) -> list[dict]:
    cdp, authenticator_id = authenticator
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def without_autofill(page) -> None:
    """A browser without passkey autofill (conditional mediation): only the button is left.
    (The virtual authenticator answers a conditional request at once, without a UI.)"""
    page.add_init_script("PublicKeyCredential.isConditionalMediationAvailable = async () => false;")


def add_passkey(page, base: str, name: str) -> None:
    page.goto(base + "/account/passkeys/new")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create passkey").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(f"Passkey “{name}” added"))


def sign_out(page) -> None:
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign out").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def test_add_sign_in_passwordless_and_remove_a_passkey(live_server, page, user, authenticator):
    assert live_server.startswith("http://localhost:")
    without_autofill(page)
    sign_in(page, live_server, "alice")
    page.goto(live_server + "/account/")
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    page.get_by_role("link", name="Add a passkey").click()
    expect(page.get_by_role("heading", name="Add a passkey")).to_be_visible()
    page.get_by_label("Name").fill("Chromium")
    page.get_by_role("button", name="Create passkey").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("Passkey “Chromium” added"))
    expect(page.get_by_text("Chromium", exact=True)).to_be_visible()
    [stored] = credentials(authenticator)
    assert stored["isResidentCredential"]  # discoverable: usernameless sign-in works

    sign_out(page)
    page.goto(live_server + "/login")
    button = page.get_by_role("button", name="Use a passkey")
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("last used")).to_be_visible()

    page.get_by_role("link", name="Remove passkey Chromium…").click()
    expect(page.get_by_role("heading", name="Remove passkey “Chromium”?")).to_be_visible()
    page.get_by_role("button", name="Remove passkey").click()
    expect(page.get_by_role("status")).to_have_text("Passkey “Chromium” removed.")
    expect(page.get_by_text("No passkeys yet.")).to_be_visible()


def test_a_passkey_the_server_does_not_know_shows_an_error(live_server, page, user, authenticator):
    # The passkey was removed here but not on the device: the sign-in page says so, in place.
    without_autofill(page)
    sign_in(page, live_server, "alice")
    add_passkey(page, live_server, "Gone")
    page.get_by_role("link", name="Remove passkey Gone…").click()
    page.get_by_role("button", name="Remove passkey").click()
    sign_out(page)
    page.goto(live_server + "/login")
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.locator("#passkey-error")).to_have_text(
        "That passkey could not be used to sign in."
    )
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    a11y.check(page)


def test_the_username_field_offers_the_passkey(live_server, page, user, authenticator):
    # Conditional mediation (WebAuthn L3 §5.1.4, mediation "conditional"): the sign-in page
    # asks at once, the browser offers the passkey in the username field's autofill; the
    # virtual authenticator picks it without a UI, so the page signs in by itself.
    sign_in(page, live_server, "alice")
    add_passkey(page, live_server, "Autofill")
    sign_out(page)
    page.goto(live_server + "/login?next=/account/passkeys/new")
    expect(page.get_by_role("heading", name="Add a passkey")).to_be_visible()


def test_the_add_page_shows_errors_in_the_summary(live_server, page, user, authenticator):
    sign_in(page, live_server, "alice")
    page.goto(live_server + "/account/passkeys/new")
    page.get_by_role("button", name="Create passkey").click()  # no name
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: Add a passkey"))
    expect(page.locator("#error-summary").get_by_role("link")).to_have_text(re.compile("^Name: "))


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def test_rename_and_the_admin_view(live_server, page, user, root, authenticator):
    without_autofill(page)  # the admin signs in with a password in the same browser
    sign_in(page, live_server, "alice")
    add_passkey(page, live_server, "Laptop")
    page.get_by_role("link", name="Rename passkey Laptop").click()
    expect(page.get_by_label("Name")).to_have_value("Laptop")
    page.get_by_label("Name").fill("Old laptop")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Passkey renamed to “Old laptop”.")

    sign_out(page)
    sign_in(page, live_server, "root")
    page.goto(live_server + f"/admin/users/{user.id}")
    expect(page.get_by_role("heading", name="Passkeys")).to_be_visible()
    expect(page.get_by_role("rowheader", name="Old laptop")).to_be_visible()
    page.get_by_role("link", name="Remove the passkey Old laptop…").click()
    expect(
        page.get_by_role("heading", name="Remove passkey “Old laptop” of alice?")
    ).to_be_visible()
    page.get_by_role("button", name="Remove passkey").click()
    expect(page.get_by_text("No passkeys.")).to_be_visible()
