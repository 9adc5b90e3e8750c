"""acr and amr in tokens, step-up through acr_values and the claims request.

OIDC Core §2 (acr, amr), §3.1.2.1 (acr_values, max_age), §5.5.1.1 (claims: acr essential),
§12.2 (refresh: same values); RFC 8176 (amr values); RFC 9068 §2.2.1 (acr in JWT access
tokens); OpenID Connect Unmet Authentication Requirements 1.0 §3; OIDC Discovery §3.
"""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.oauth.acr import MFA, PHR, PWD
from tests.helpers import query

from .conftest import code_at, enrol_in_account, post_form


def id_token_claims(client, token_response: dict) -> dict:
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(token_response["id_token"], keys).claims


def signed_in_with_app(client, auth) -> str:
    """Alice signs in with her password, then sets up an app: the session is still pwd."""
    assert auth.login().status_code == 302
    return enrol_in_account(client)


def test_discovery_lists_the_acr_values(client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["acr_values_supported"] == [PWD, MFA, PHR]
    assert "acr" in meta["claims_supported"]
    assert meta["claims_parameter_supported"] is True


def test_a_password_sign_in_is_pwd(client, auth, user, oauth_client):
    auth.login()
    claims = id_token_claims(client, auth.tokens(oauth_client))
    assert claims["acr"] == PWD and claims["amr"] == ["pwd"]


def test_acr_values_asking_for_mfa_steps_up_with_the_app(app, client, auth, user, oauth_client):
    secret = signed_in_with_app(client, auth)
    params, verifier = auth.code_flow_params(oauth_client, acr_values=MFA)
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302 and response.location.endswith("/login/totp")
    back = post_form(client, "/login/totp", code=code_at(secret, 1))
    assert back.status_code == 302 and back.location.startswith("/authorize?")
    response = auth.authorize(params)
    code = query(response.location)["code"]
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    claims = id_token_claims(client, tokens)
    assert claims["acr"] == MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]  # RFC 8176: two distinct factors


def test_refresh_keeps_the_original_acr_and_amr(app, client, auth, user, oauth_client):
    secret = signed_in_with_app(client, auth)
    params, verifier = auth.code_flow_params(
        oauth_client, scope="openid offline_access", acr_values=MFA, prompt="consent"
    )
    client.get("/authorize", query_string=params)
    post_form(client, "/login/totp", code=code_at(secret, 1))
    code = query(auth.authorize(params).location)["code"]
    first = auth.exchange(oauth_client, code, verifier).get_json()
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    ).get_json()
    # OIDC Core §12.2: the refreshed ID token repeats how the user signed in.
    claims = id_token_claims(client, refreshed)
    assert claims["acr"] == MFA and claims["amr"] == ["pwd", "otp", "mfa"]


def test_an_essential_acr_that_cannot_be_met_is_an_error(client, auth, user, oauth_client):
    auth.login()
    claims = {"id_token": {"acr": {"essential": True, "values": [PHR]}}}
    params, _ = auth.code_flow_params(oauth_client, claims=json.dumps(claims))
    response = client.get("/authorize", query_string=params)
    result = query(response.location)
    assert response.location.startswith(oauth_client.redirect_uri)
    assert result["error"] == "unmet_authentication_requirements"
    assert result["state"] == params["state"] and "code" not in result


def test_a_voluntary_acr_that_cannot_be_met_reports_the_real_one(client, auth, user, oauth_client):
    auth.login()
    claims = id_token_claims(client, auth.tokens(oauth_client, acr_values=PHR))
    assert claims["acr"] == PWD  # never a stronger class than the sign-in had


def test_an_essential_mfa_leads_a_user_without_factors_through_enrolment(
    client, auth, user, oauth_client
):
    auth.login()
    claims = {"id_token": {"acr": {"essential": True, "value": MFA}}}
    params, verifier = auth.code_flow_params(oauth_client, claims=json.dumps(claims))
    response = client.get("/authorize", query_string=params)
    assert response.location.endswith("/login/enrol")
    from .conftest import page_secret

    html = client.get("/login/enrol").get_data(as_text=True)
    secret = page_secret(html)
    done = post_form(client, "/login/enrol", code=code_at(secret))
    assert done.status_code == 200 and "Your recovery codes" in done.get_data(as_text=True)
    code = query(auth.authorize(params).location)["code"]
    assert (
        id_token_claims(client, auth.exchange(oauth_client, code, verifier).get_json())["acr"]
        == MFA
    )


def test_max_age_still_forces_a_fresh_sign_in_with_both_factors(client, auth, user, oauth_client):
    secret = signed_in_with_app(client, auth)
    auth.logout()
    auth.login()
    post_form(client, "/login/totp", code=code_at(secret, 1))
    params, _ = auth.code_flow_params(oauth_client, max_age="0")
    response = client.get("/authorize", query_string=params)
    assert "/login?" in response.location  # OIDC Core §3.1.2.1: re-authenticate


def test_prompt_none_cannot_step_up(client, auth, user, oauth_client):
    signed_in_with_app(client, auth)
    params, _ = auth.code_flow_params(oauth_client, acr_values=MFA, prompt="none")
    response = client.get("/authorize", query_string=params)
    assert query(response.location)["error"] == "login_required"


def test_a_malformed_claims_parameter_is_invalid_request(client, auth, user, oauth_client):
    auth.login()
    params, _ = auth.code_flow_params(oauth_client, claims="{not json")
    response = client.get("/authorize", query_string=params)
    assert query(response.location)["error"] == "invalid_request"


@pytest.mark.config(ACCESS_TOKEN_FORMAT="jwt")
def test_jwt_access_tokens_carry_acr(client, auth, user, oauth_client):
    # RFC 9068 §2.2.1: acr, amr and auth_time of the sign-in.
    auth.login()
    tokens = auth.tokens(oauth_client)
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(tokens["access_token"], keys).claims
    assert claims["acr"] == PWD and claims["amr"] == ["pwd"]


def test_a_pushed_request_for_mfa_steps_up_and_comes_back(client, auth, user, oauth_client):
    # RFC 9126 §4: the pushed acr_values are the request's; the way back is the request_uri.
    from tests.helpers import basic_auth

    secret = signed_in_with_app(client, auth)
    params, verifier = auth.code_flow_params(oauth_client, acr_values=MFA)
    pushed = client.post(
        "/par", data=params, headers=basic_auth(oauth_client.client_id, oauth_client.client_secret)
    )
    assert pushed.status_code == 201, pushed.get_json()
    link = {"client_id": oauth_client.client_id, "request_uri": pushed.get_json()["request_uri"]}
    response = client.get("/authorize", query_string=link)
    assert response.location.endswith("/login/totp")
    back = post_form(client, "/login/totp", code=code_at(secret, 1))
    assert "request_uri=" in back.location
    response = auth.authorize(link)
    code = query(response.location)["code"]
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    assert id_token_claims(client, tokens)["acr"] == MFA
