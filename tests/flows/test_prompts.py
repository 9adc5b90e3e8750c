"""prompt, max_age, login_hint and id_token_hint of the request (OIDC Core §3.1.2.1)."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from idp import db
from idp.models import UserSession

from ..helpers import basic_auth, query

ISSUER = "http://localhost"


def get_authorize(client, params: dict):
    return client.get("/authorize?" + urlencode(params))


def assert_error_redirect(response, rp, params: dict, error: str) -> None:
    """OIDC Core §3.1.2.6 error response: at the redirect URI, with state (and iss, RFC 9207)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri + "?")
    result = query(location)
    assert result["error"] == error, result
    assert result["state"] == params["state"]
    assert result["iss"] == ISSUER
    assert "code" not in result


def assert_login_redirect(response) -> str:
    """The browser is sent to the login page; returns the URL it comes back to."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    return query(location)["next"]


def sign_in_and_return(client, auth, next_url: str):
    """Sign in on the login page and follow the redirect back to /authorize."""
    response = auth.login(next_url=next_url)
    assert response.status_code == 302
    assert response.headers["Location"] == next_url
    return client.get(next_url)


def code_from(response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    result = query(response.headers["Location"])
    assert "code" in result, result
    return result["code"]


def id_token_claims(client, auth, rp, code: str, verifier: str) -> dict:
    tokens = auth.exchange(rp, code, verifier).get_json()
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(tokens["id_token"], keys).claims


def age_sign_in(app, client, seconds: int) -> None:
    """Move this browser's sign-in time `seconds` into the past (cookie and session row)."""
    with client.session_transaction() as session:
        session["auth_time"] = int(session["auth_time"]) - seconds
        sid = session.get("sid")
    if sid:
        with app.app_context():
            s = db.session()
            s.execute(
                update(UserSession)
                .where(UserSession.sid == sid)
                .values(auth_time=UserSession.auth_time - seconds)
            )
            s.commit()


@pytest.fixture
def consented(auth, user, oauth_client):
    """alice is signed in and has already allowed oauth_client the usual scopes."""
    auth.login()
    auth.get_code(oauth_client)
    return oauth_client


def test_prompt_none_without_session_is_login_required(client, user, oauth_client, auth):
    # OIDC Core §3.1.2.1 prompt=none: no UI; §3.1.2.6 login_required.
    params, _ = auth.code_flow_params(oauth_client, prompt="none")
    assert_error_redirect(get_authorize(client, params), oauth_client, params, "login_required")


def test_prompt_none_without_consent_is_consent_required(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.6 consent_required: signed in, but the client was never allowed.
    auth.login()
    params, _ = auth.code_flow_params(oauth_client, prompt="none")
    assert_error_redirect(get_authorize(client, params), oauth_client, params, "consent_required")


def test_prompt_none_with_remembered_consent_returns_code_without_any_page(client, auth, consented):
    # OIDC Core §3.1.2.1: prompt=none succeeds silently when no interaction is needed.
    params, verifier = auth.code_flow_params(consented, prompt="none")
    response = get_authorize(client, params)
    code = code_from(response)
    assert query(response.headers["Location"])["state"] == params["state"]
    assert auth.exchange(consented, code, verifier).status_code == 200


def test_prompt_none_with_new_scope_is_consent_required(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.4: consent covers specific scopes; a new one needs the user again.
    auth.login()
    auth.get_code(oauth_client, scope="openid")
    params, _ = auth.code_flow_params(oauth_client, scope="openid email", prompt="none")
    assert_error_redirect(get_authorize(client, params), oauth_client, params, "consent_required")


def test_prompt_login_forces_login_page_and_flow_completes(app, client, auth, consented):
    # OIDC Core §3.1.2.1 prompt=login: reauthenticate even with a session; auth_time is fresh.
    age_sign_in(app, client, 3600)
    params, verifier = auth.code_flow_params(consented, prompt="login")
    next_url = assert_login_redirect(get_authorize(client, params))
    assert "prompt=login" not in next_url  # honoured once, not a loop
    before = int(time.time())
    code = code_from(sign_in_and_return(client, auth, next_url))
    claims = id_token_claims(client, auth, consented, code, verifier)
    assert claims["auth_time"] >= before
    assert claims["nonce"] == params["nonce"]


def test_prompt_consent_shows_consent_even_when_remembered(client, auth, consented):
    # OIDC Core §3.1.2.1 prompt=consent: ask for consent before returning information.
    params, verifier = auth.code_flow_params(consented, prompt="consent")
    page = get_authorize(client, params)
    assert page.status_code == 200
    assert b'name="allow"' in page.data
    code = code_from(auth.authorize(params))
    assert auth.exchange(consented, code, verifier).status_code == 200


def test_prompt_none_and_consent_together_is_invalid_request(client, auth, consented):
    # OIDC Core §3.1.2.1: none with any other value is an error.
    params, _ = auth.code_flow_params(consented, prompt="none consent")
    assert_error_redirect(get_authorize(client, params), consented, params, "invalid_request")


@pytest.mark.parametrize(
    "prompt", ["none login", "login none", "bogus", "login unknown", "logïn", 'login "x"']
)
def test_invalid_prompt_values_are_invalid_request(client, auth, consented, prompt):
    # OIDC Core §3.1.2.1: none cannot be combined; unknown values are an invalid request
    # (§3.1.2.6 invalid_request for unsupported parameter values).
    params, _ = auth.code_flow_params(consented, prompt=prompt)
    assert_error_redirect(get_authorize(client, params), consented, params, "invalid_request")


@pytest.mark.parametrize("prompt", ["logïn", 'x"y', "a\\b"])
def test_pushed_prompt_with_odd_characters_is_invalid_request(client, auth, consented, prompt):
    # RFC 9126 §2.3: the error comes back as JSON whose description keeps to RFC 6749 §5.2's
    # characters; the unknown value made Authlib raise ValueError, a 500 (schemathesis).
    params, _ = auth.code_flow_params(consented, prompt=prompt)
    params.pop("client_id")
    response = client.post(
        "/par", data=params, headers=basic_auth(consented.client_id, consented.client_secret)
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert re.fullmatch(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*", body["error_description"])


def test_max_age_exceeded_forces_login_and_auth_time_is_fresh(app, client, auth, consented):
    # OIDC Core §3.1.2.1 max_age: reauthenticate when the last sign-in is older;
    # §2: auth_time is then the new sign-in.
    age_sign_in(app, client, 600)
    params, verifier = auth.code_flow_params(consented, max_age="60")
    next_url = assert_login_redirect(get_authorize(client, params))
    before = int(time.time())
    code = code_from(sign_in_and_return(client, auth, next_url))
    claims = id_token_claims(client, auth, consented, code, verifier)
    assert claims["auth_time"] >= before


def test_max_age_zero_forces_login_and_flow_completes(client, auth, consented):
    # OIDC Core §3.1.2.1: max_age=0 is equivalent to prompt=login.
    params, verifier = auth.code_flow_params(consented, max_age="0")
    next_url = assert_login_redirect(get_authorize(client, params))
    before = int(time.time())
    code = code_from(sign_in_and_return(client, auth, next_url))
    claims = id_token_claims(client, auth, consented, code, verifier)
    assert claims["auth_time"] >= before


def test_max_age_not_exceeded_keeps_session(client, auth, consented):
    # OIDC Core §3.1.2.1: within max_age no reauthentication; §2 auth_time is still returned.
    params, verifier = auth.code_flow_params(consented, max_age="3600")
    code = code_from(get_authorize(client, params))
    claims = id_token_claims(client, auth, consented, code, verifier)
    assert "auth_time" in claims


def test_prompt_none_with_max_age_exceeded_is_login_required(app, client, auth, consented):
    # OIDC Core §3.1.2.1: reauthentication is needed but prompt=none forbids the page.
    age_sign_in(app, client, 600)
    params, _ = auth.code_flow_params(consented, max_age="60", prompt="none")
    assert_error_redirect(get_authorize(client, params), consented, params, "login_required")


@pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
def test_malformed_max_age_is_invalid_request(client, auth, consented, value):
    # OIDC Core §3.1.2.1: max_age is a number of seconds; §3.1.2.6 invalid_request.
    params, _ = auth.code_flow_params(consented, max_age=value)
    assert_error_redirect(get_authorize(client, params), consented, params, "invalid_request")


def test_login_hint_prefills_username(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1 login_hint: a hint to the login identifier the user might use.
    params, _ = auth.code_flow_params(oauth_client, login_hint="alice@example.com")
    response = get_authorize(client, params)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    field = re.search(r'<input[^>]*name="username"[^>]*>', page)
    assert field, page[:500]
    value = re.search(r'value="([^"]*)"', field.group(0))
    assert value and html.unescape(value.group(1)) == "alice@example.com"


def test_login_hint_is_escaped_on_login_page(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1 login_hint is attacker-controlled; it must not inject markup.
    params, _ = auth.code_flow_params(oauth_client, login_hint='"><script>alert(1)</script>')
    response = get_authorize(client, params)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page


def test_id_token_hint_of_signed_in_user_passes_with_prompt_none(client, auth, consented):
    # OIDC Core §3.1.2.1 id_token_hint: the End-User is the one the hint names.
    code, verifier, _ = auth.get_code(consented)
    hint = auth.exchange(consented, code, verifier).get_json()["id_token"]
    params, verifier = auth.code_flow_params(consented, prompt="none", id_token_hint=hint)
    code = code_from(get_authorize(client, params))
    assert auth.exchange(consented, code, verifier).status_code == 200


def test_id_token_hint_of_another_user_with_prompt_none_is_login_required(
    client, auth, user, factory, oauth_client
):
    # OIDC Core §3.1.2.1: the hinted user is not the signed-in one; with prompt=none
    # the OP cannot ask, so login_required.
    factory.user(username="bob", email="bob@example.com")
    assert auth.login("bob").status_code == 302
    bob_hint = auth.tokens(oauth_client)["id_token"]
    assert auth.login("alice").status_code == 302
    auth.get_code(oauth_client)  # alice's consent, so only the hint can stop the flow
    params, _ = auth.code_flow_params(oauth_client, prompt="none", id_token_hint=bob_hint)
    assert_error_redirect(get_authorize(client, params), oauth_client, params, "login_required")


def test_id_token_hint_of_another_user_without_prompt_asks_to_log_in(
    client, auth, user, factory, oauth_client
):
    # OIDC Core §3.1.2.1: the OP must not silently continue as a different user.
    factory.user(username="bob", email="bob@example.com")
    assert auth.login("bob").status_code == 302
    bob_hint = auth.tokens(oauth_client)["id_token"]
    assert auth.login("alice").status_code == 302
    auth.get_code(oauth_client)
    params, _ = auth.code_flow_params(oauth_client, id_token_hint=bob_hint)
    assert_login_redirect(get_authorize(client, params))


@pytest.mark.parametrize("hint", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_id_token_hint_is_invalid_request(client, auth, consented, hint):
    # OIDC Core §3.1.2.1: the hint must be an ID token this OP issued; §3.1.2.6 invalid_request.
    params, _ = auth.code_flow_params(consented, prompt="none", id_token_hint=hint)
    assert_error_redirect(get_authorize(client, params), consented, params, "invalid_request")


def test_id_token_hint_issued_to_another_client_is_invalid_request(
    client, auth, user, factory, consented
):
    # OIDC Core §3.1.2.1: the OP need not honour a hint it did not issue to this client.
    other = factory.client(name="Other App")
    hint = auth.tokens(other)["id_token"]
    params, _ = auth.code_flow_params(consented, prompt="none", id_token_hint=hint)
    assert_error_redirect(get_authorize(client, params), consented, params, "invalid_request")
