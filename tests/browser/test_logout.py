"""Chromium signs out: RP-Initiated Logout back to the RP, front-channel iframes, and the
confirmation page that keeps a third-party page from signing anyone out.

The RP is Authlib's client plus loopback HTTP servers; the identity provider runs on its
own loopback port (tests/browser/conftest.py).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from idp import db
from idp.models import Client, UserSession

from ..factories import PASSWORD
from ..sessions.receiver import Receiver
from .a11y import expect

pytestmark = pytest.mark.browser


def discover(issuer: str) -> dict:
    return requests.get(issuer + "/.well-known/openid-configuration", timeout=5).json()


def register(app, factory, rp_callback, **logout_metadata):
    client = factory.client(name="Logout RP", redirect_uris=[rp_callback.url])
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == client.client_id))
        for name, value in logout_metadata.items():
            setattr(row, name, value)
        db.session().commit()
    return client


def sign_in(page) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def sign_in_to_rp(page, meta: dict, client, rp_callback) -> dict:
    """The code flow through the real pages; returns the RP's token response."""
    verifier = generate_token(48)
    with OAuth2Session(
        client.client_id,
        client.client_secret,
        scope="openid profile",
        redirect_uri=rp_callback.url,
        code_challenge_method="S256",
    ) as rp:
        url, _ = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20)
        )
        page.goto(url)
        sign_in(page)
        page.get_by_role("button", name="Allow").click()
        hit = rp_callback.wait()
        return rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier
        )


def live_sessions(app) -> list[UserSession]:
    with app.app_context():
        return list(db.session().scalars(select(UserSession).where(UserSession.ended_at.is_(None))))


def test_rp_initiated_logout_runs_front_channel_then_returns_to_the_rp(
    app, live_server, page, rp_callback, factory, user
):
    # RP-Initiated Logout 1.0 §2-§3 with Front-Channel Logout 1.0 §3: the hint ties the
    # request to the session, so no question is asked; the RP's iframe is loaded with iss
    # and sid, then the browser arrives at the post_logout_redirect_uri with state.
    logged_out = rp_callback.url + "/logged-out"
    client = register(
        app,
        factory,
        rp_callback,
        post_logout_redirect_uris=[logged_out],
        frontchannel_logout_uri=rp_callback.url + "/frontchannel",
        frontchannel_logout_session_required=True,
    )
    meta = discover(live_server)
    token = sign_in_to_rp(page, meta, client, rp_callback)
    (row,) = live_sessions(app)

    params = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": logged_out,
        "state": "bye-1",
    }
    page.goto(meta["end_session_endpoint"] + "?" + urlencode(params))

    frame = rp_callback.wait()
    assert frame.url.startswith(rp_callback.url + "/frontchannel?")
    assert frame.params == {"iss": meta["issuer"], "sid": row.sid}
    back = rp_callback.wait()
    assert back.url == logged_out + "?state=bye-1"
    expect(page).to_have_url(logged_out + "?state=bye-1")
    assert live_sessions(app) == []

    page.goto(live_server + "/account/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_logout_without_hint_asks_before_signing_out(
    app, live_server, page, rp_callback, factory, user
):
    # RP-Initiated Logout 1.0 §2: without an id_token_hint the user is asked; confirming
    # ends the session and returns to the registered URI with state.
    logged_out = rp_callback.url + "/logged-out"
    client = register(app, factory, rp_callback, post_logout_redirect_uris=[logged_out])
    meta = discover(live_server)
    page.goto(live_server + "/login")
    sign_in(page)
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    params = {"client_id": client.client_id, "post_logout_redirect_uri": logged_out, "state": "s"}
    page.goto(meta["end_session_endpoint"] + "?" + urlencode(params))
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    expect(page.get_by_text("Logout RP asks to sign you out")).to_be_visible()
    assert len(live_sessions(app)) == 1
    page.get_by_role("button", name="Sign out").click()

    back = rp_callback.wait()
    assert back.url == logged_out + "?state=s"
    expect(page).to_have_url(logged_out + "?state=s")
    assert live_sessions(app) == []


def test_third_party_page_cannot_sign_the_user_out_silently(
    app, live_server, page, rp_callback, factory, user
):
    # RP-Initiated Logout 1.0 §2 and the CSRF rule: a page on another site auto-submits the
    # confirmation form. The browser withholds the SameSite=Lax cookie on that cross-site
    # POST; this server re-posts it from its own origin, where it is only a request: the
    # user sees the question and stays signed in.
    client = register(app, factory, rp_callback)
    meta = discover(live_server)
    page.goto(live_server + "/login")
    sign_in(page)
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()

    with Receiver() as attacker:
        attack = (
            f'<!doctype html><form method="post" action="{meta["end_session_endpoint"]}">'
            f'<input name="client_id" value="{client.client_id}">'
            '<input name="confirm" value="Sign out"></form>'
            "<script>document.forms[0].submit()</script>"
        )
        attacker.pages["/attack"] = attack
        # localhost and 127.0.0.1 are different sites: this is a cross-site POST.
        page.goto(f"http://localhost:{attacker.server.server_port}/attack")
        expect(page).to_have_url(re.compile(re.escape(meta["end_session_endpoint"])))
        expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()

    assert len(live_sessions(app)) == 1
    page.goto(live_server + "/account/")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
