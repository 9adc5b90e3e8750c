"""The device authorization grant (RFC 8628) with a real browser: a "device" (plain HTTP
requests, as a TV would make them) starts the flow and polls; the user, in Chromium, signs
in at the verification URI, types the code, checks the client and its scopes, and answers.

Set IDP_SCREENSHOTS=<folder> to save screenshots of the code entry and confirmation pages.
"""

from __future__ import annotations

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from idp import db
from idp.models import AuditEvent, DeviceCode, secret_hash

from ..factories import PASSWORD
from .a11y import expect
from .test_e2e import discover, screenshot

pytestmark = pytest.mark.browser

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class Device:
    """A device with limited input: it only talks to the authorization server (§3.1, §3.4)."""

    def __init__(self, meta: dict, registered):
        self.meta = meta
        self.auth = (registered.client_id, registered.client_secret)

    def start(self, scope: str) -> dict:
        response = requests.post(
            self.meta["device_authorization_endpoint"],
            data={"scope": scope},
            auth=self.auth,
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def poll(self, device_code: str) -> requests.Response:
        return requests.post(
            self.meta["token_endpoint"],
            data={"grant_type": DEVICE_GRANT, "device_code": device_code},
            auth=self.auth,
            timeout=5,
        )


def waited_an_interval(app, device_code: str) -> None:
    """The device waits `interval` seconds between polls; the test moves the clock instead."""
    with app.app_context():
        session = db.session()
        session.execute(
            update(DeviceCode)
            .where(DeviceCode.device_code_hash == secret_hash(device_code))
            .values(last_polled_at=None)
        )
        session.commit()


def sign_in(page) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_user_types_the_code_and_the_device_gets_tokens(app, live_server, page, factory, user):
    # RFC 8628 §3.1-§3.5 end to end; OIDC Core: the device gets a verifiable ID token.
    registered = factory.client(
        name="Living Room TV", grant_types=(DEVICE_GRANT, "refresh_token"), redirect_uris=()
    )
    meta = discover(live_server)
    device = Device(meta, registered)
    started = device.start("openid profile")
    assert device.poll(started["device_code"]).json()["error"] == "authorization_pending"

    # The user reads verification_uri and the code off the TV screen.
    page.goto(started["verification_uri"])
    sign_in(page)
    expect(page.get_by_role("heading", name="Connect a device")).to_be_visible()
    screenshot(page, "device-code")
    # Typed the way people type: lower case, without the dash.
    page.get_by_label("Code").fill(started["user_code"].replace("-", "").lower())
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Living Room TV wants to access your account on a device"
    )
    expect(page.locator("#confirm-code")).to_have_text(started["user_code"])
    expect(page.get_by_text("Sign you in and know who you are")).to_be_visible()
    expect(page.get_by_text("Your name and basic profile")).to_be_visible()
    screenshot(page, "device-confirm")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()

    waited_an_interval(app, started["device_code"])
    response = device.poll(started["device_code"])
    assert response.status_code == 200, response.text
    tokens = response.json()
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["iss"] == meta["issuer"] and claims["aud"] == registered.client_id
    assert claims["sub"] == user.sub
    info = requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": "Bearer " + tokens["access_token"]},
        timeout=5,
    )
    assert info.status_code == 200 and info.json()["sub"] == user.sub
    # Redeemed once (§3.5): the next poll gets nothing.
    assert device.poll(started["device_code"]).json()["error"] == "invalid_grant"
    with app.app_context():
        events = db.session().scalars(
            select(AuditEvent.event).where(AuditEvent.event.like("device.%"))
        )
        assert set(events) == {"device.code_issued", "device.approved"}


def test_user_follows_the_complete_uri_and_denies(app, live_server, page, factory, user):
    # RFC 8628 §3.3.1: verification_uri_complete fills the code in; the user still confirms,
    # and here denies, which the device learns as access_denied (§3.5).
    registered = factory.client(name="Kitchen Radio", grant_types=(DEVICE_GRANT,), redirect_uris=())
    meta = discover(live_server)
    device = Device(meta, registered)
    started = device.start("openid")

    page.goto(started["verification_uri_complete"])
    sign_in(page)
    expect(page.get_by_label("Code")).to_have_value(started["user_code"])
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#confirm-code")).to_have_text(started["user_code"])
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Request denied")).to_be_visible()

    response = device.poll(started["device_code"])
    assert response.status_code == 400
    assert response.json()["error"] == "access_denied"
