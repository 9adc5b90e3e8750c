"""The consent page for claims asked for one by one (OIDC Core §5.5) in Chromium, checked with
axe-core: the claims listed in plain words, the essential one marked, Allow ends at the
relying party with a code."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.browser.a11y import expect
from tests.browser.test_pages import sign_in
from tests.helpers import pkce_pair

pytestmark = pytest.mark.browser


def test_the_consent_page_names_each_requested_claim(live_server, page, user, factory, rp_callback):
    rp = factory.client(name="Storefront", redirect_uris=[rp_callback.url])
    sign_in(page, live_server, "alice")
    _, challenge = pkce_pair()
    claims = {"userinfo": {"email": None}, "id_token": {"name": {"essential": True}}}
    query = {
        "response_type": "code",
        "client_id": rp.client_id,
        "redirect_uri": rp_callback.url,
        "scope": "openid",
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "claims": json.dumps(claims),
    }
    page.goto(live_server + "/authorize?" + urlencode(query))
    details = page.locator("ul.claims li")
    expect(details).to_have_count(2)
    expect(details.nth(0)).to_have_text("Your full name asked for as required")
    expect(details.nth(1)).to_have_text("Your email address")
    page.get_by_role("button", name="Allow").click()
    hit = rp_callback.wait()
    assert hit.params["state"] == "s-1" and "code" in hit.params
