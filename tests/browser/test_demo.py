"""`idp demo`: the built-in relying party signs the demo admin in through the real pages."""

import pytest

from idp import demo

pytestmark = pytest.mark.browser


# The demo admin signs in with the password alone here; admins' MFA: tests/browser/test_mfa.py.
@pytest.mark.config(DEMO=True, MFA_REQUIRED_FOR_ADMINS=False)
def test_demo_relying_party_completes_the_code_flow_and_verifies_the_id_token(
    app, live_server, page
):
    with app.app_context():
        info = demo.prepare(app)
    page.goto(live_server + "/demo/")
    page.get_by_label("Username or email").fill(info["username"])
    page.get_by_label("Password").fill(info["password"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(live_server + "/demo/callback*")
    text = page.inner_text("main")
    # The demo RP checked the signature against the JWKS, the issuer and the nonce, and
    # read the authorization response's iss (RFC 9207).
    assert "ID token signature, issuer and nonce verified" in text
    assert f"iss: {live_server}" in text.replace("\n", " ")
    assert '"preferred_username": "admin"' in text
    # Reloading sends the used code again: the provider refuses it (RFC 6749 §4.1.2) and
    # the demo says so, instead of failing with a 500.
    page.reload()
    assert "the provider refused the request (invalid_grant)" in page.inner_text("main")


@pytest.mark.config(DEMO=True)
def test_demo_callback_without_its_state_cookie_is_refused(app, live_server, page):
    # RFC 6749 §10.12: a callback the RP did not start is refused (CSRF on the redirect URI).
    page.goto(live_server + "/demo/callback?code=x&state=y")
    assert "state mismatch" in page.inner_text("main")
