"""A passkey as the second factor and for step-up, in real Chromium (issue #15).

1. Password, then the passkey page (auth.mfa.begin sends a user who has a passkey there),
   then signed in with a multi-factor session (RFC 8176 §2: "pwd" + "hwk"/"swk" + "mfa").
2. Step-up: a session signed in with the password alone, a relying party's authorization
   request with acr_values=urn:idp:acr:phr (OIDC Core §3.1.2.1), the passkey page first,
   then consent and a code whose ID token says acr urn:idp:acr:phr.

The DevTools virtual authenticator, the localhost issuer (browsers refuse an IP address as
the RP ID, WebAuthn L3 §5.1.4.1) and the passkey helpers come from test_passkeys.py; every
page state asserted on is checked with axe-core (a11y.expect).
"""

from __future__ import annotations

import re

import pytest
from authlib.common.security import generate_token

from idp.oauth.acr import PHR, PWD

from ..factories import PASSWORD
from .a11y import expect
from .test_e2e import audit_events, discover, relying_party, see_consent, validated_id_token
from .test_pages import sign_in
from .test_passkeys import add_passkey, app_config, authenticator, sign_out, without_autofill

__all__ = ["app_config", "authenticator"]  # fixtures: the localhost issuer, the authenticator

pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]

FACTOR_PAGE = "/login/second-factor/passkey"
PASSKEY_METHODS = {"hwk", "swk"}  # RFC 8176 §2: proof of possession of a hardware/software key


def on_the_factor_page(page, base: str) -> None:
    expect(page).to_have_url(base + FACTOR_PAGE)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()


def test_password_then_passkey_as_the_second_factor(app, live_server, page, user, authenticator):
    without_autofill(page)  # else the conditional request on /login signs in by itself
    sign_in(page, live_server, "alice")
    add_passkey(page, live_server, "Laptop")
    sign_out(page)
    assert audit_events(app, "mfa.success") == []  # the first sign-in was the password alone

    page.goto(live_server + "/login")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The password is right and alice has a passkey: not signed in yet, the passkey is asked.
    on_the_factor_page(page, live_server)

    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")

    [event] = audit_events(app, "mfa.success")
    assert event.actor == user.sub
    details = event.details
    assert details["factor"] == "webauthn"
    amr = details["amr"]
    # RFC 8176 §2: the password, the key, and "mfa" because the two are distinct factors.
    assert "pwd" in amr and "mfa" in amr
    assert PASSKEY_METHODS & set(amr)


def test_acr_values_phr_steps_a_password_session_up_with_the_passkey(
    app, live_server, page, rp_callback, factory, user, authenticator
):
    without_autofill(page)
    # Signed in while alice had no passkey: the session's amr is ["pwd"]; then she adds one.
    sign_in(page, live_server, "alice")
    add_passkey(page, live_server, "Laptop")
    assert audit_events(app, "mfa.success") == []

    client = factory.client(name="Strong RP", redirect_uris=[rp_callback.url])
    meta = discover(live_server)
    assert PHR in meta["acr_values_supported"]
    verifier, nonce = generate_token(48), generate_token(20)
    with relying_party(client, rp_callback.url) as rp:
        # OIDC Core §3.1.2.1: acr_values asks for a phishing-resistant sign-in (RFC 8176 §2
        # hwk/swk); the session has less, so the server gets the missing factor first.
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, acr_values=PHR
        )
        page.goto(url)
        on_the_factor_page(page, live_server)
        # Nothing was issued before the step-up: the browser is at the factor page and
        # nothing reached the relying party.
        assert rp_callback.hits.empty()
        assert audit_events(app, "mfa.started")[-1].details["need"] == "phr"

        page.get_by_role("button", name="Use a passkey").click()
        see_consent(page, "Strong RP")
        assert rp_callback.hits.empty()
        page.get_by_role("button", name="Allow").click()

        hit = rp_callback.wait()
        expect(page).to_have_url(re.compile(re.escape(rp_callback.url) + r"\?"))
        assert hit.params["state"] == state  # RFC 6749 §4.1.2
        assert rp_callback.hits.empty()  # one redirect, after the step-up only
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier
        )
    claims = validated_id_token(token["id_token"], meta, client.client_id, nonce)
    assert claims["sub"] == user.sub
    # OIDC Core §2 / §3.1.2.1: the class asked for, met; RFC 8176 §2: the key was used.
    assert claims["acr"] == PHR
    assert claims["acr"] != PWD
    assert PASSKEY_METHODS & set(claims["amr"])
    assert "pwd" in claims["amr"] and "mfa" in claims["amr"]  # step-up kept the password

    [event] = audit_events(app, "mfa.success")
    assert event.details["factor"] == "webauthn"
