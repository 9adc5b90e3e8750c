"""One client authentication method per request (RFC 6749 §2.3: "The client MUST NOT use
more than one authentication method in each request"), at every endpoint that authenticates
clients: token, revocation, introspection, PAR and device authorization.

Each credential in these tests is valid on its own, so a server that picked one method and
ignored the other would answer with success.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuthorizationCode, DeviceCode, PushedAuthorizationRequest, Token

from ..helpers import basic_auth, pkce_pair
from .conftest import DEVICE_GRANT, assertion, client_assertion_form, make_client, secret_key

METHODS = ("basic", "post", "assertion")
PAIRS = [*combinations(METHODS, 2), METHODS]
GRANTS = ("authorization_code", "client_credentials", DEVICE_GRANT)


@dataclass
class Confidential:
    client_id: str
    client_secret: str
    redirect_uri: str
    own: str  # the one method it registered, as named in METHODS


@pytest.fixture(
    params=[("client_secret_basic", "basic"), ("client_secret_jwt", "assertion")],
    ids=["basic-client", "jwt-client"],
)
def registered(app, request) -> Confidential:
    """A confidential client with a secret; client_secret_jwt clients also sign assertions."""
    auth_method, own = request.param
    made = make_client(app, auth_method=auth_method, grant_types=GRANTS)
    return Confidential(made.client_id, made.client_secret, made.redirect_uri, own)


def credentials(registered, methods) -> tuple[dict, dict]:
    """(form fields, headers) carrying valid credentials of the given methods."""
    form, headers = {}, {}
    if "basic" in methods:
        headers = basic_auth(registered.client_id, registered.client_secret)
    if "post" in methods:
        form.update(client_id=registered.client_id, client_secret=registered.client_secret)
    if "assertion" in methods:
        key = secret_key(registered.client_secret)
        form.update(client_assertion_form(assertion(registered.client_id, key, alg="HS256")))
    return form, headers


def count(app, model) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model))


def issue_token(client, registered) -> str:
    """An access token of the client, obtained with its own method alone."""
    form, headers = credentials(registered, (registered.own,))
    data = {"grant_type": "client_credentials", "scope": "api.read", **form}
    response = client.post("/token", data=data, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def assert_invalid_request(response) -> None:
    # RFC 6749 §5.2: invalid_request, status 400, the usual JSON error.
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_token_endpoint_refuses_two_methods(app, client, registered, methods):
    form, headers = credentials(registered, methods)
    data = {"grant_type": "client_credentials", "scope": "api.read", **form}
    assert_invalid_request(client.post("/token", data=data, headers=headers))
    assert count(app, Token) == 0


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_code_is_not_used_up_by_a_request_with_two_methods(
    app, client, auth, user, registered, methods
):
    # The refusal comes before the code is consumed: the client may retry correctly.
    auth.login()
    code, verifier, params = auth.get_code(registered)
    form, headers = credentials(registered, methods)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": params["redirect_uri"],
    }
    assert_invalid_request(client.post("/token", data={**data, **form}, headers=headers))
    assert count(app, Token) == 0
    with app.app_context():
        assert db.session().scalar(select(AuthorizationCode.used_at)) is None
    form, headers = credentials(registered, (registered.own,))
    response = client.post("/token", data={**data, **form}, headers=headers)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_revocation_refuses_two_methods(app, client, registered, methods):
    # RFC 7009 §2.1: the client authenticates as at the token endpoint.
    token = issue_token(client, registered)
    form, headers = credentials(registered, methods)
    response = client.post("/revoke", data={"token": token, **form}, headers=headers)
    assert_invalid_request(response)
    with app.app_context():
        assert db.session().scalar(select(Token.revoked_at)) is None


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_introspection_refuses_two_methods(client, registered, methods):
    # RFC 7662 §2.1: no answer about the token without a properly authenticated caller.
    token = issue_token(client, registered)
    form, headers = credentials(registered, methods)
    response = client.post("/introspect", data={"token": token, **form}, headers=headers)
    assert_invalid_request(response)
    assert "active" not in response.get_json()


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_par_refuses_two_methods(app, client, registered, methods):
    # RFC 9126 §2: the client authenticates as at the token endpoint.
    _, challenge = pkce_pair()
    form, headers = credentials(registered, methods)
    data = {
        "response_type": "code",
        "client_id": registered.client_id,
        "redirect_uri": registered.redirect_uri,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **form,
    }
    assert_invalid_request(client.post("/par", data=data, headers=headers))
    assert count(app, PushedAuthorizationRequest) == 0


@pytest.mark.parametrize("methods", PAIRS, ids="+".join)
def test_device_authorization_refuses_two_methods(app, client, registered, methods):
    # RFC 8628 §3.1: the client authenticates as at the token endpoint.
    form, headers = credentials(registered, methods)
    response = client.post(
        "/device_authorization", data={"scope": "openid", **form}, headers=headers
    )
    assert_invalid_request(response)
    assert count(app, DeviceCode) == 0


def test_client_id_next_to_basic_is_not_a_second_method(app, client, factory):
    # RFC 6749 §2.3.1: client_id in the body repeats the Basic one; only a secret would count.
    basic = factory.client(grant_types=("client_credentials",), redirect_uris=())
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": basic.client_id},
        headers=basic_auth(basic.client_id, basic.client_secret),
    )
    assert response.status_code == 200, response.get_json()
    assert count(app, Token) == 1


def test_empty_client_secret_next_to_basic_carries_no_credential(client, factory):
    basic = factory.client(grant_types=("client_credentials",), redirect_uris=())
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": ""},
        headers=basic_auth(basic.client_id, basic.client_secret),
    )
    assert response.status_code == 200, response.get_json()


def test_public_client_id_alone_is_no_method(client, auth, user, public_client):
    # RFC 6749 §2.3: a public client only identifies itself; that is not authentication.
    auth.login()
    assert auth.tokens(public_client)["access_token"]


def test_a_second_method_is_refused_before_either_is_checked(client, factory):
    # A wrong second credential gets the same answer: nothing is learnt about either.
    basic = factory.client(grant_types=("client_credentials",), redirect_uris=())
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_secret": "wrong"},
        headers=basic_auth(basic.client_id, basic.client_secret),
    )
    assert_invalid_request(response)
