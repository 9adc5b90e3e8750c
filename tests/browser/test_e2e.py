"""Chromium signs in through the real pages; Authlib's client is the relying party.

The server runs on a loopback port, the RP's redirect URI is a tiny loopback HTTP server
that records what arrives, and the RP only knows the issuer: every endpoint comes from
discovery and the ID token is checked against the published JWKS, as a real RP would.

Set IDP_SCREENSHOTS=<folder> to save screenshots of the login, consent and account pages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Consent

from ..factories import PASSWORD
from .a11y import expect

pytestmark = pytest.mark.browser

SCOPE = "openid profile email offline_access"
PHONE = {"width": 390, "height": 844}
SCROLL_WIDTH = "document.documentElement.scrollWidth"


def discover(issuer: str) -> dict:
    response = requests.get(issuer + "/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200
    return response.json()


def relying_party(client, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        client.client_id,
        client.client_secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


def screenshot(page, name: str) -> None:
    folder = os.environ.get("IDP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page, shots: str = "") -> None:
    """What a person does on the login page the authorization request led to."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, f"login{shots}")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def see_consent(page, client_name: str, shots: str = "") -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"{client_name} wants to access your account"
    )
    screenshot(page, f"consent{shots}")


def sign_in_and_allow(page, client_name: str) -> None:
    sign_in(page)
    see_consent(page, client_name)
    page.get_by_role("button", name="Allow").click()


def validated_id_token(id_token: str, meta: dict, client_id: str, nonce: str) -> dict:
    """OIDC Core §3.1.3.7: signature by a JWKS key, then iss, aud, nonce and exp."""
    response = requests.get(meta["jwks_uri"], timeout=5)
    assert response.status_code == 200
    keys = KeySet.import_key_set(response.json())
    token = jwt.decode(id_token, keys, algorithms=meta["id_token_signing_alg_values_supported"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        sub={"essential": True},
    ).validate(token.claims)
    return token.claims


def userinfo_status(meta: dict, access_token: str) -> int:
    headers = {"Authorization": "Bearer " + access_token}
    return requests.get(meta["userinfo_endpoint"], headers=headers, timeout=5).status_code


def audit_events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_relying_party_signs_user_in_with_code_flow_pkce_and_verified_id_token(
    app, live_server, page, rp_callback, factory, user
):
    # RFC 6749 §4.1, RFC 7636 §4, OIDC Core §3.1: the whole code flow through the real pages.
    client = factory.client(name="Browser RP", redirect_uris=[rp_callback.url])
    meta = discover(live_server)
    assert meta["issuer"] == live_server  # OIDC Discovery §4.3
    verifier, nonce = generate_token(48), generate_token(20)
    with relying_party(client, rp_callback.url) as rp:
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        page.goto(url)
        sign_in_and_allow(page, "Browser RP")

        hit = rp_callback.wait()
        expect(page).to_have_url(re.compile(re.escape(rp_callback.url) + r"\?"))
        assert hit.method == "GET"
        assert hit.params["state"] == state  # RFC 6749 §4.1.2
        assert hit.params["iss"] == meta["issuer"]  # RFC 9207 §2.4

        # Authlib checks state again and sends the verifier (RFC 7636 §4.5).
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier
        )
        assert token["token_type"].lower() == "bearer"
        claims = validated_id_token(token["id_token"], meta, client.client_id, nonce)
        assert claims["sub"] == user.sub

        # OIDC Core §5.3: UserInfo answers for the same subject.
        info = rp.get(meta["userinfo_endpoint"], timeout=5)
        assert info.status_code == 200
        assert info.json()["sub"] == user.sub
        assert info.json()["email"] == "alice@example.com"

        # RFC 6749 §6: a refresh gives a new access token that works.
        refreshed = rp.refresh_token(meta["token_endpoint"])
        assert refreshed["access_token"] != token["access_token"]
        assert userinfo_status(meta, refreshed["access_token"]) == 200

        # RFC 7009 §2.2: revocation answers 200; RFC 6750 §3.1: the token is then refused.
        revoked = rp.revoke_token(
            meta["revocation_endpoint"], refreshed["access_token"], "access_token"
        )
        assert revoked.status_code == 200
        assert userinfo_status(meta, refreshed["access_token"]) == 401

    granted = audit_events(app, "consent.granted")
    assert [(e.actor, e.target) for e in granted] == [(user.sub, client.client_id)]


def test_form_post_response_mode_delivers_code_by_auto_submitted_post_on_a_phone(
    browser, live_server, rp_callback, factory, user
):
    # OAuth 2.0 Form Post Response Mode §2: the browser POSTs the response to the redirect
    # URI; on a 390px phone the login and consent pages fit without sideways scrolling.
    client = factory.client(name="Phone RP", redirect_uris=[rp_callback.url])
    meta = discover(live_server)
    assert "form_post" in meta["response_modes_supported"]
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        verifier, nonce = generate_token(48), generate_token(20)
        with relying_party(client, rp_callback.url) as rp:
            url, state = rp.create_authorization_url(
                meta["authorization_endpoint"],
                code_verifier=verifier,
                nonce=nonce,
                response_mode="form_post",
            )
            page.goto(url)
            expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
            assert page.evaluate(SCROLL_WIDTH) <= PHONE["width"]
            sign_in(page, shots="-phone")
            see_consent(page, "Phone RP", shots="-phone")
            expect(page.get_by_role("button", name="Allow")).to_be_in_viewport()
            expect(page.get_by_role("button", name="Deny")).to_be_in_viewport()
            assert page.evaluate(SCROLL_WIDTH) <= PHONE["width"]
            page.get_by_role("button", name="Allow").click()

            hit = rp_callback.wait()
            assert hit.method == "POST"
            assert hit.url == rp_callback.url  # the response is in the body, not the URL
            assert hit.params["state"] == state
            assert hit.params["iss"] == meta["issuer"]  # RFC 9207 §2.4
            expect(page.get_by_text("Signed in.")).to_be_visible()

            token = rp.fetch_token(
                meta["token_endpoint"], code=hit.params["code"], code_verifier=verifier
            )
            claims = validated_id_token(token["id_token"], meta, client.client_id, nonce)
            assert claims["sub"] == user.sub
    finally:
        context.close()


def test_account_page_lists_authorized_app_and_revoke_button_ends_its_access(
    app, live_server, page, rp_callback, factory, user
):
    # OIDC Core §3.1.2.4 (remembered consent) and RFC 7009 §2.1 (revoking a grant revokes
    # its tokens): the user sees what they authorized and can take it back.
    client = factory.client(name="Browser RP", redirect_uris=[rp_callback.url])
    meta = discover(live_server)
    verifier = generate_token(48)
    with relying_party(client, rp_callback.url) as rp:
        url, _ = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20)
        )
        page.goto(url)
        sign_in_and_allow(page, "Browser RP")
        hit = rp_callback.wait()
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier
        )
    assert userinfo_status(meta, token["access_token"]) == 200

    page.goto(live_server + "/account/")
    apps = page.get_by_role("list").filter(has_text="Browser RP")
    expect(apps).to_contain_text("Browser RP")
    screenshot(page, "account")
    page.get_by_role("button", name="Revoke access of Browser RP").click()

    expect(page.get_by_role("status")).to_contain_text("Access removed")
    expect(page.get_by_text("None yet.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Revoke"))).to_have_count(0)
    assert userinfo_status(meta, token["access_token"]) == 401
    refresh = requests.post(
        meta["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(client.client_id, client.client_secret),
        timeout=5,
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    with app.app_context():
        assert db.session().scalars(select(Consent)).all() == []
    [event] = audit_events(app, "consent.revoked")
    assert (event.actor, event.target) == (user.sub, client.client_id)


def test_sign_in_goes_straight_back_to_client_when_no_consent_is_needed(
    live_server, page, rp_callback, factory, user
):
    # OIDC Core §3.1.2.4: without a consent step the login form's redirect chain ends at the
    # client; the page's CSP form-action must not stop it (CSP3 form-action covers redirects).
    client = factory.client(name="First Party", redirect_uris=[rp_callback.url], first_party=True)
    meta = discover(live_server)
    verifier, nonce = generate_token(48), generate_token(20)
    with relying_party(client, rp_callback.url) as rp:
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        page.goto(url)
        sign_in(page)
        hit = rp_callback.wait()
        assert hit.params["state"] == state
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier
        )
    assert validated_id_token(token["id_token"], meta, client.client_id, nonce)["sub"] == user.sub
