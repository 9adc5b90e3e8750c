"""PKCE (RFC 7636) as RFC 9700 §2.1.1 wants it: S256 only, mandatory for public clients."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuthorizationCode

from ..helpers import pkce_pair, query

ISSUER = "http://localhost"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_request(client, **extra) -> dict:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def refused_at_authorize(app, auth, client, params) -> dict:
    """The request is answered with an error redirect and no code is stored."""
    response = auth.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    result = query(location)
    assert "code" not in result
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(AuthorizationCode)) == 0
    return result


def code_for(auth, client, **extra) -> str:
    response = auth.authorize(code_request(client, **extra))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return query(response.headers["Location"])["code"]


def redeem(auth, client, code, verifier=None, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(extra)
    return auth.token(client, data)


def assert_token_error(response, error: str) -> None:
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == error
    assert "access_token" not in body
    assert response.headers["Cache-Control"] == "no-store"


# --- authorization endpoint ------------------------------------------------------------


def test_public_client_without_code_challenge_is_refused(app, auth, user, public_client):
    # RFC 9700 §2.1.1: public clients MUST use PKCE; RFC 6749 §4.1.2.1: invalid_request.
    auth.login()
    result = refused_at_authorize(app, auth, public_client, code_request(public_client))
    assert result["error"] == "invalid_request"


def test_plain_code_challenge_method_is_refused(app, auth, user, public_client):
    # RFC 9700 §2.1.1: use S256; plain would expose the verifier to whoever sees the request.
    auth.login()
    verifier = secrets.token_urlsafe(48)
    params = code_request(public_client, code_challenge=verifier, code_challenge_method="plain")
    assert refused_at_authorize(app, auth, public_client, params)["error"] == "invalid_request"


def test_code_challenge_without_method_is_refused(app, auth, user, oauth_client):
    # RFC 7636 §4.3: a missing method means plain, which RFC 9700 §2.1.1 rules out.
    auth.login()
    _, challenge = pkce_pair()
    params = code_request(oauth_client, code_challenge=challenge)
    assert refused_at_authorize(app, auth, oauth_client, params)["error"] == "invalid_request"


def test_code_challenge_method_without_challenge_is_refused(app, auth, user, oauth_client):
    # RFC 7636 §4.4.1: code_challenge is required once PKCE is used -> invalid_request.
    auth.login()
    params = code_request(oauth_client, code_challenge_method="S256")
    assert refused_at_authorize(app, auth, oauth_client, params)["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["s256", "SHA256", "S512"])
def test_unknown_code_challenge_method_is_refused(app, auth, user, public_client, method):
    # RFC 7636 §4.4.1: a method the server does not support -> invalid_request.
    auth.login()
    _, challenge = pkce_pair()
    params = code_request(public_client, code_challenge=challenge, code_challenge_method=method)
    assert refused_at_authorize(app, auth, public_client, params)["error"] == "invalid_request"


@pytest.mark.parametrize("challenge", ["short", "a" * 42, "a" * 129, "+" * 43, "a b" * 15])
def test_malformed_code_challenge_is_refused(app, auth, user, public_client, challenge):
    # RFC 7636 §4.2: an S256 challenge is 43 base64url characters (the ABNF allows 43-128).
    auth.login()
    params = code_request(public_client, code_challenge=challenge, code_challenge_method="S256")
    assert refused_at_authorize(app, auth, public_client, params)["error"] == "invalid_request"


def test_discovery_advertises_s256_only(client):
    # RFC 8414 §2 code_challenge_methods_supported; RFC 9700 §2.1.1.
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["code_challenge_methods_supported"] == ["S256"]


# --- token endpoint --------------------------------------------------------------------


def test_public_client_with_s256_gets_tokens(app, auth, user, public_client):
    # RFC 7636 §4.6: the server recomputes S256(code_verifier) and compares it.
    auth.login()
    verifier, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    with app.app_context():
        row = db.session().scalar(select(AuthorizationCode))
        assert (row.code_challenge, row.code_challenge_method) == (challenge, "S256")
    response = redeem(auth, public_client, code, verifier)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["access_token"] and body["id_token"]


@pytest.mark.parametrize("length", [43, 128])
def test_verifier_length_bounds_are_accepted(auth, user, public_client, length):
    # RFC 7636 §4.1: code_verifier is 43 to 128 unreserved characters.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    verifier = "".join(secrets.choice(alphabet) for _ in range(length))
    auth.login()
    code = code_for(
        auth, public_client, code_challenge=s256(verifier), code_challenge_method="S256"
    )
    assert redeem(auth, public_client, code, verifier).status_code == 200


def test_confidential_client_may_omit_pkce(auth, user, oauth_client):
    # RFC 9700 §2.1.1: PKCE is RECOMMENDED for confidential clients, not required; the
    # client authenticates instead (RFC 6749 §4.1.3).
    auth.login()
    code = code_for(auth, oauth_client)
    response = redeem(auth, oauth_client, code)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["access_token"]


def test_confidential_client_that_sent_a_challenge_must_send_the_verifier(auth, user, oauth_client):
    # RFC 7636 §4.5/§4.6: once a challenge is bound to the code, the verifier is required.
    auth.login()
    verifier, challenge = pkce_pair()
    code = code_for(auth, oauth_client, code_challenge=challenge, code_challenge_method="S256")
    assert_token_error(redeem(auth, oauth_client, code), "invalid_request")
    assert_token_error(redeem(auth, oauth_client, code, pkce_pair()[0]), "invalid_grant")
    response = redeem(auth, oauth_client, code, verifier)
    assert response.status_code == 200, response.get_json()


def test_wrong_verifier_is_invalid_grant(app, auth, user, public_client):
    # RFC 7636 §4.6: values not equal -> invalid_grant.
    auth.login()
    _, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    assert_token_error(redeem(auth, public_client, code, pkce_pair()[0]), "invalid_grant")


def test_challenge_itself_as_verifier_is_invalid_grant(auth, user, public_client):
    # RFC 7636 §4.6 / RFC 9700 §2.1.1: with S256 the challenge seen in the front channel
    # does not redeem the code (no fallback to plain comparison).
    auth.login()
    _, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    assert_token_error(redeem(auth, public_client, code, challenge), "invalid_grant")


def test_verifier_without_a_challenge_is_refused(auth, user, oauth_client):
    # RFC 9700 §2.1.1 / §4.8.2 (PKCE downgrade): a code_verifier for a code issued
    # without code_challenge MUST be rejected.
    auth.login()
    code = code_for(auth, oauth_client)
    response = redeem(auth, oauth_client, code, pkce_pair()[0])
    assert response.status_code == 400
    # Neither RFC 9700 nor RFC 7636 names the error for this case: either reading holds.
    assert response.get_json()["error"] in ("invalid_request", "invalid_grant")


def test_public_client_without_verifier_is_invalid_request(auth, user, public_client):
    # RFC 7636 §4.5 (code_verifier REQUIRED), RFC 6749 §5.2: missing parameter.
    auth.login()
    _, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    assert_token_error(redeem(auth, public_client, code), "invalid_request")


@pytest.mark.parametrize(
    "verifier", ["too-short", "a" * 42, "a" * 129, "é" * 43, "a+b/c=" * 8, "a b" * 15]
)
def test_malformed_verifier_is_refused(auth, user, public_client, verifier):
    # RFC 7636 §4.1: 43-128 characters of [A-Z a-z 0-9 - . _ ~]; anything else is refused.
    auth.login()
    _, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    response = redeem(auth, public_client, code, verifier)
    assert response.status_code == 400
    # RFC 6749 §5.2 invalid_request: a parameter value that is "otherwise malformed"; a
    # well-formed verifier that does not match would be invalid_grant (RFC 7636 §4.6).
    assert response.get_json()["error"] == "invalid_request"


def test_failed_verifier_does_not_reveal_tokens_on_retry_with_other_client(
    auth, user, public_client, factory
):
    # RFC 6749 §4.1.3 + RFC 7636 §4.6: the right verifier is useless to another client.
    other = factory.client(public=True, name="Other SPA")
    auth.login()
    verifier, challenge = pkce_pair()
    code = code_for(auth, public_client, code_challenge=challenge, code_challenge_method="S256")
    response = redeem(auth, other, code, verifier, redirect_uri=public_client.redirect_uri)
    assert_token_error(response, "invalid_grant")


def test_authorization_page_is_not_reached_with_bad_pkce_before_login(client, public_client):
    # RFC 9700 §2.1.1: the refusal does not depend on a session; no code, no login detour.
    params = code_request(public_client)
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(public_client.redirect_uri + "?")
    assert query(location)["error"] == "invalid_request"
