"""The claims request parameter beyond the first response: sub by value (OIDC Core §3.1.2.2,
§5.5.1) with public and pairwise subjects (§8), refresh (§12.2), signed UserInfo (§5.3.2),
JWT access tokens (RFC 9068), and the parameter pushed (RFC 9126) or signed (RFC 9101)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from idp import db
from idp.models import AuthorizationCode, Token

from ..helpers import basic_auth, query
from ..jar.conftest import (  # noqa: F401  # noqa: F401
    authorization_claims,
    consent,
    ec_key,
    jar_client,
    request_object,
    rsa_key,
)
from ..protocol16.conftest import configure
from .conftest import (
    EMAIL_AND_NAME,
    allow,
    at_login,
    code_of,
    consent_items,
    decode,
    error_of,
    get,
    params_with,
    tokens_for,
    userinfo,
)

# --- sub by value (§3.1.2.2, §5.5.1) ------------------------------------------------------


def sub_request(value=None, values=None, target="id_token") -> dict:
    ask = {"essential": True}
    if value is not None:
        ask["value"] = value
    if values is not None:
        ask["values"] = values
    return {target: {"sub": ask}}


@pytest.mark.parametrize("target", ["id_token", "userinfo"])
def test_a_sub_of_another_user_with_prompt_none_is_login_required(
    client, auth, user, oauth_client, target
):
    # §3.1.2.2: "the OP MUST only send a positive response if the End-User identified by
    # that ID Token is logged in"; prompt=none cannot ask for that sign-in.
    auth.login()
    auth.tokens(oauth_client, scope="openid")  # consented: only the sub can stop the flow
    other = sub_request("someone-else", target=target)
    params, _ = params_with(auth, oauth_client, other, prompt="none")
    assert error_of(get(client, params), oauth_client, params) == "login_required"


def test_a_sub_of_another_user_asks_to_sign_in_again(client, auth, user, factory, oauth_client):
    bob = factory.user(username="bob", email="bob@example.com", name="Bob")
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    params, verifier = params_with(auth, oauth_client, sub_request(bob.sub))
    response = get(client, params)
    assert at_login(response)  # never a code for Alice
    # Bob signs in from there and gets his own tokens.
    next_url = query(response.headers["Location"])["next"]
    assert auth.login("bob", next_url=next_url).status_code == 302
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    assert decode(client, tokens["id_token"])["sub"] == bob.sub


def test_the_signed_in_users_sub_passes(client, auth, user, oauth_client):
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    for request in (sub_request(user.sub), sub_request(values=["other", user.sub])):
        params, verifier = params_with(auth, oauth_client, request, prompt="none")
        tokens = tokens_for(client, auth, oauth_client, code_of(get(client, params)), verifier)
        assert decode(client, tokens["id_token"])["sub"] == user.sub


def test_a_pairwise_client_names_the_sub_it_sees(app, client, auth, user, factory):
    # §8: a pairwise client knows the user by its pairwise sub only: that one passes, the
    # local sub (which this client never saw) does not name the user.
    rp = factory.client(redirect_uris=("https://pairwise.example/cb",))
    configure(app, rp.client_id, subject_type="pairwise")
    auth.login()
    pairwise = decode(client, auth.tokens(rp, scope="openid")["id_token"])["sub"]
    assert pairwise != user.sub
    params, _ = params_with(auth, rp, sub_request(pairwise), prompt="none")
    code_of(get(client, params))
    params, _ = params_with(auth, rp, sub_request(user.sub), prompt="none")
    assert error_of(get(client, params), rp, params) == "login_required"


def test_pairwise_and_signed_userinfo_carry_the_claims(app, client, auth, user, factory):
    # §5.3.2 signed UserInfo and §8 pairwise subjects with individually requested claims.
    rp = factory.client(redirect_uris=("https://pairwise.example/cb",))
    configure(app, rp.client_id, subject_type="pairwise", userinfo_signed_response_alg="ES256")
    auth.login()
    params, verifier = params_with(auth, rp, EMAIL_AND_NAME)
    tokens = tokens_for(client, auth, rp, code_of(allow(client, params)), verifier)
    id_token = decode(client, tokens["id_token"])
    response = userinfo(client, tokens["access_token"])
    assert response.mimetype == "application/jwt"
    signed = decode(client, response.get_data(as_text=True))
    assert signed["email"] == "alice@example.com"
    assert signed["sub"] == id_token["sub"] != user.sub
    assert id_token["name"] == "Alice Liddell"


# --- refresh (§12.2) and token formats -----------------------------------------------------


def test_refresh_keeps_the_requested_claims(app, client, auth, user, oauth_client):
    auth.login()
    params, verifier = params_with(
        auth, oauth_client, EMAIL_AND_NAME, scope="openid offline_access"
    )
    first = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    ).get_json()
    # §12.2: the new ID token is like the first one: the id_token member's claims again.
    assert decode(client, refreshed["id_token"])["name"] == "Alice Liddell"
    assert userinfo(client, refreshed["access_token"]).get_json()["email"] == "alice@example.com"
    again = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}
    ).get_json()
    assert userinfo(client, again["access_token"]).get_json()["email"] == "alice@example.com"
    # The code and every token of the grant keep the normal form of the request.
    with app.app_context():
        session = db.session()
        stored = {session.scalar(select(AuthorizationCode.claims_request))}
        stored |= set(session.scalars(select(Token.claims_request)))
        assert stored == {'{"id_token":{"name":{"essential":true}},"userinfo":{"email":null}}'}


def test_tokens_without_the_parameter_release_only_the_scopes(client, auth, user, oauth_client):
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    assert set(userinfo(client, tokens["access_token"]).get_json()) == {"sub"}
    assert "name" not in decode(client, tokens["id_token"])


@pytest.mark.config(ACCESS_TOKEN_FORMAT="jwt")
def test_jwt_access_tokens_reach_the_claims_at_userinfo(client, auth, user, oauth_client):
    auth.login()
    params, verifier = params_with(auth, oauth_client, EMAIL_AND_NAME)
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    assert tokens["access_token"].count(".") == 2
    assert userinfo(client, tokens["access_token"]).get_json()["email"] == "alice@example.com"


# --- pushed (RFC 9126) and signed (RFC 9101) ------------------------------------------------


def push(http, rp, params: dict):
    return http.post("/par", data=params, headers=basic_auth(rp.client_id, rp.client_secret))


def test_a_pushed_request_carries_the_claims(client, auth, user, oauth_client):
    auth.login()
    params, verifier = params_with(auth, oauth_client, EMAIL_AND_NAME)
    pushed = push(client, oauth_client, params)
    assert pushed.status_code == 201, pushed.get_json()
    by_reference = {
        "client_id": oauth_client.client_id,
        "request_uri": pushed.get_json()["request_uri"],
    }
    items = consent_items(get(client, by_reference))
    assert "Your full name asked for as required" in items
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, by_reference)), verifier)
    assert decode(client, tokens["id_token"])["name"] == "Alice Liddell"
    assert userinfo(client, tokens["access_token"]).get_json()["email"] == "alice@example.com"


@pytest.mark.parametrize("value", ["{not json", json.dumps({"userinfo": {"email": True}})])
def test_a_malformed_pushed_parameter_is_refused_at_par(client, user, oauth_client, auth, value):
    # RFC 9126 §2.3: the error goes to the client in the PAR response.
    params, _ = params_with(auth, oauth_client, value)
    response = push(client, oauth_client, params)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_a_request_object_carries_the_claims(client, auth, user, jar_client):  # noqa: F811
    # RFC 9101 §4 / OIDC Core §6.1: claims inside the request object is a JSON object.
    auth.login()
    body, verifier = authorization_claims(jar_client, scope="openid", claims=EMAIL_AND_NAME)
    token = request_object(jar_client, body)
    response = client.get(
        "/authorize?" + "&".join([f"client_id={jar_client.client_id}", f"request={token}"])
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert "Your full name asked for as required" in consent_items(page)
    done = consent(client, page)
    result = query(done.headers["Location"])
    tokens = auth.exchange(jar_client, result["code"], verifier).get_json()
    assert decode(client, tokens["id_token"])["name"] == "Alice Liddell"
    assert userinfo(client, tokens["access_token"]).get_json()["email"] == "alice@example.com"


def test_a_malformed_claims_in_a_request_object_is_invalid_request(
    client,
    auth,
    user,
    jar_client,  # noqa: F811
):
    auth.login()
    body, _ = authorization_claims(jar_client, claims={"id_token": {"sub": {"values": []}}})
    token = request_object(jar_client, body)
    response = client.get(f"/authorize?client_id={jar_client.client_id}&request={token}")
    assert response.status_code == 303  # continued as a pushed request: refused there
    response = client.get(response.headers["Location"])
    location = response.headers["Location"]
    assert response.status_code == 302
    assert location.startswith(jar_client.redirect_uri + "?")
    result = parse_qs(urlsplit(location).query)
    assert result["error"] == ["invalid_request"] and "code" not in result
